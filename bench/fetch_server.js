// fetch_server.js: a static file server on loopback for bench/fetch.sh
// (node's http module: fast enough that the client, not the server, is
// measured). Usage: node fetch_server.js ROOT PORTFILE [DELAY_MS]
// DELAY_MS holds every answer back, like the round trip to a remote store.
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');

const root = process.argv[2];
const delay = Number(process.argv[4] || 0);
const cache = new Map();
for (const name of fs.readdirSync(root)) cache.set('/' + name, fs.readFileSync(path.join(root, name)));

const server = http.createServer((req, res) => {
    const body = cache.get(req.url.split('?')[0]);
    if (!body) {
        res.writeHead(404, {'Content-Type': 'text/plain'});
        res.end('not found\n');
        return;
    }
    const send = () => {
        res.writeHead(200, {'Content-Type': 'image/png', 'Content-Length': body.length});
        res.end(body);
    };
    if (delay > 0)
        setTimeout(send, delay);
    else
        send();
});
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => {
    fs.writeFileSync(process.argv[3] + '.tmp', String(server.address().port));
    fs.renameSync(process.argv[3] + '.tmp', process.argv[3]);
});
setTimeout(() => process.exit(0), 30 * 60 * 1000).unref();
