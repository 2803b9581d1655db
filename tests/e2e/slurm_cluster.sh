# slurm_cluster.sh: a one-machine Slurm cluster for tests and benchmarks
# (sourced, not run): munged, slurmctld and two slurmd (-N node1, -N node2)
# with every key, socket, state and log under one folder. Needs slurm-wlm
# and munge (scripts/install-deps.sh).
#
#   cluster_start DIR   writes DIR/slurm.conf, exports SLURM_CONF, starts the
#                       daemons, waits until both nodes are idle (returns 1 if not)
#   cluster_slurmd NODE starts (or restarts) the slurmd of node1 or node2
#   cluster_stop        stops every daemon cluster_start started (by pid file)

cluster_start() {
    SLURM_DIR=$1
    local c=$1 me base i
    mkdir -p "$c/munge" "$c/state" "$c/spool" "$c/log"
    chmod 700 "$c/munge"
    head -c 1024 /dev/urandom >"$c/munge/munge.key"
    chmod 400 "$c/munge/munge.key"
    me=$(id -un)
    base=$((20000 + ($$ % 200) * 50))
    export SLURM_CONF=$c/slurm.conf
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
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
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
    munged --key-file="$c/munge/munge.key" --socket="$c/munge/munge.sock" \
        --pid-file="$c/munge/munged.pid" --log-file="$c/munge/munged.log" \
        --seed-file="$c/munge/seed" --force || return 1
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
    for f in "$c/slurmd-node1.pid" "$c/slurmd-node2.pid" "$c/ctld.pid" "$c/munge/munged.pid"; do
        p=$(cat "$f" 2>/dev/null || true)
        [ -n "$p" ] && kill "$p" 2>/dev/null && pids="$pids $p"
    done
    for p in $pids; do
        for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    SLURM_DIR=
}
