# slurm_cluster.sh: a one-machine Slurm cluster for tests and benchmarks
# (sourced, not run): munged, slurmctld and two slurmd (-N node1, -N node2)
# with every key, socket, state and log under one folder. Needs slurm-wlm
# and munge (scripts/install-deps.sh).
#
#   cluster_start DIR [accounting]
#                       writes DIR/slurm.conf, exports SLURM_CONF, starts the
#                       daemons, waits until both nodes are idle (returns 1 if not).
#                       With `accounting`: also a MariaDB server (datadir,
#                       socket and a loopback port of its own) and slurmdbd
#                       (DIR/slurmdbd.conf), the cluster registered with
#                       sacctmgr, and slurmctld recording jobs there, so sacct
#                       answers (needs slurmdbd and mariadb-server)
#   cluster_slurmd NODE starts (or restarts) the slurmd of node1 or node2
#   cluster_stop        stops every daemon cluster_start started (by pid file)
#   cluster_has_accounting  0 when slurmdbd and mariadbd are installed

cluster_has_accounting() {
    command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null &&
        command -v mariadb-install-db >/dev/null && command -v sacctmgr >/dev/null
}

cluster_start() {
    SLURM_DIR=$1
    local c=$1 me base i acct=${2:-} storage=accounting_storage/none gather=jobacct_gather/none
    mkdir -p "$c/munge" "$c/state" "$c/spool" "$c/log"
    chmod 700 "$c/munge"
    head -c 1024 /dev/urandom >"$c/munge/munge.key"
    chmod 400 "$c/munge/munge.key"
    me=$(id -un)
    base=$((20000 + ($$ % 200) * 50))
    # (a cluster with accounting after one without: other ports)
    [ "$acct" = accounting ] && base=$((base + 25))
    export SLURM_CONF=$c/slurm.conf
    munged --key-file="$c/munge/munge.key" --socket="$c/munge/munge.sock" \
        --pid-file="$c/munge/munged.pid" --log-file="$c/munge/munged.log" \
        --seed-file="$c/munge/seed" --force || return 1
    if [ "$acct" = accounting ]; then
        cluster_accounting "$c" "$me" $((base + 4)) $((base + 5)) || return 1
        storage="accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((base + 5))
AccountingStoragePass=$c/munge/munge.sock"
        gather=jobacct_gather/linux
    fi
    cat >"$SLURM_CONF" <<EOF
ClusterName=vfstest
SlurmctldHost=localhost
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
AuthInfo=socket=$c/munge/munge.sock
CredType=cred/munge
SlurmUser=$me
SlurmdUser=$me
StateSaveLocation=$c/state
SlurmdSpoolDir=$c/spool/%n
SlurmctldPidFile=$c/ctld.pid
SlurmdPidFile=$c/slurmd-%n.pid
SlurmctldLogFile=$c/log/ctld.log
SlurmdLogFile=$c/log/slurmd-%n.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
AccountingStorageType=$storage
JobAcctGatherType=$gather
MpiDefault=none
ReturnToService=2
SlurmdTimeout=10
InactiveLimit=0
MinJobAge=300
KillWait=2
Waittime=0
SchedulerParameters=sched_interval=1
NodeName=node1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((base + 2)) CPUs=2 RealMemory=1000 State=UNKNOWN
NodeName=node2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((base + 3)) CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=node[1-2] Default=YES MaxTime=INFINITE State=UP
EOF
    if [ "$acct" = accounting ]; then
        sacctmgr -i add cluster vfstest >"$c/log/sacctmgr.log" 2>&1 ||
            { echo "cluster_start: sacctmgr add cluster failed: $(tail -n 1 "$c/log/sacctmgr.log")"; return 1; }
    fi
    slurmctld -f "$SLURM_CONF" || return 1
    cluster_slurmd node1 || return 1
    cluster_slurmd node2 || return 1
    for i in $(seq 60); do
        cluster_idle && return 0
        sleep 0.5
    done
    echo "cluster_start: the nodes did not become idle; logs in $c/log"
    return 1
}

# cluster_accounting DIR USER DBPORT DBDPORT: MariaDB (DIR/db, its socket
# DIR/mysql.sock, listening on 127.0.0.1:DBPORT only; root without a
# password) and slurmdbd (DIR/slurmdbd.conf, port DBDPORT); returns when
# slurmdbd answers
cluster_accounting() {
    local c=$1 me=$2 dbport=$3 dbdport=$4 i
    mariadb-install-db --no-defaults --datadir="$c/db" --user="$me" \
        --auth-root-authentication-method=normal --skip-test-db \
        --innodb-log-file-size=8M >"$c/log/mariadb-install.log" 2>&1 ||
        { echo "cluster_start: mariadb-install-db failed; see $c/log/mariadb-install.log"; return 1; }
    # (a background job of this shell: its pid file, not $!, is what stops it)
    mariadbd --no-defaults --datadir="$c/db" --user="$me" --socket="$c/mysql.sock" \
        --port="$dbport" --bind-address=127.0.0.1 --skip-name-resolve \
        --pid-file="$c/mysqld.pid" --log-error="$c/log/mysqld.log" --skip-log-bin \
        --innodb-buffer-pool-size=16M --innodb-log-file-size=8M \
        --innodb-flush-log-at-trx-commit=0 </dev/null >/dev/null 2>&1 &
    for i in $(seq 100); do
        mariadb-admin --no-defaults -S "$c/mysql.sock" -uroot ping >/dev/null 2>&1 && break
        sleep 0.2
    done
    [ -s "$c/mysqld.pid" ] || { echo "cluster_start: mariadbd did not start; see $c/log/mysqld.log"; return 1; }
    cat >"$c/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$c/munge/munge.sock
DbdHost=localhost
DbdPort=$dbdport
SlurmUser=$me
PidFile=$c/slurmdbd.pid
LogFile=$c/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$dbport
StorageUser=root
StorageLoc=vfs_acct
EOF
    chmod 600 "$c/slurmdbd.conf"
    # slurmdbd reads the slurmdbd.conf next to $SLURM_CONF
    slurmdbd || { echo "cluster_start: slurmdbd failed; see $c/log/slurmdbd.log"; return 1; }
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$dbdport") 2>/dev/null && return 0
        sleep 0.2
    done
    echo "cluster_start: slurmdbd does not answer on port $dbdport; see $c/log/slurmdbd.log"
    return 1
}

cluster_slurmd() {
    slurmd -f "$SLURM_CONF" -N "$1"
}

# both nodes idle
cluster_idle() {
    [ "$(sinfo -h -N -o '%N %t' 2>/dev/null | grep -c ' idle$')" -eq 2 ]
}

cluster_stop() {
    [ -n "${SLURM_DIR:-}" ] || return 0
    local f p c=$SLURM_DIR pids=""
    for f in "$c/slurmd-node1.pid" "$c/slurmd-node2.pid" "$c/ctld.pid" "$c/slurmdbd.pid" \
        "$c/mysqld.pid" "$c/munge/munged.pid"; do
        p=$(cat "$f" 2>/dev/null || true)
        [ -n "$p" ] && kill "$p" 2>/dev/null && pids="$pids $p"
    done
    for p in $pids; do
        for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    SLURM_DIR=
}
