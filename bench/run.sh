#!/usr/bin/env bash
# dns-tool benchmark: dnsperf against unbound directly (reference), through the gateway with the
# cache off (pass-through of unique names) and with the cache on (hits), all on loopback.
#
#   npm run bench                      # build, then this script with defaults (10 s per workload)
#   DURATION=5 bash bench/run.sh       # shorter
#   bash bench/run.sh --tcp            # dnsperf -> gateway over TCP
#   bash bench/run.sh --reload         # SIGHUP a rewritten config every 250 ms during each gateway run
#
# See bench/README.md for what is measured and the knobs.
set -uo pipefail
shopt -u patsub_replacement 2>/dev/null || true   # bash 5.2: '&' in ${s//x/y} replacements must stay literal

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
RELOAD=0 MODE=udp
for arg in "$@"; do
  case $arg in
    --reload) RELOAD=1 ;;
    --tcp) MODE=tcp ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $arg" >&2; usage >&2; exit 2 ;;
  esac
done

: "${DURATION:=10}"        # seconds per workload
: "${CLIENTS:=10}"         # dnsperf -c
: "${OUTSTANDING:=200}"    # dnsperf -q
: "${TIMEOUT:=2}"          # dnsperf -t: unanswered after this long = lost
: "${DNSPERF_OPTS:=-e}"    # EDNS0 on, like real stubs
: "${NAMES:=100000}"       # static names h1..hN.bench.test
: "${HIT_NAMES:=1000}"     # cache-hit working set
: "${MISS_NAMES:=500000}"  # unique names for pass-through (dnsperf wraps around; cache off, so still misses)
: "${NETNS:=1}"            # 1 = private network namespace with only lo (needs root + unshare)
: "${PIN:=1}"              # 1 = taskset: gateway on PROXY_CPU, dnsperf + unbound on LOADGEN_CPU
: "${PROXY_CPU:=1}"
: "${LOADGEN_CPU:=0}"
: "${UPSTREAM_PORT:=8853}"
: "${UPSTREAM_PLAIN_PORT:=5300}"
: "${GATEWAY_PORT:=5401}"
: "${ADMIN_PORT:=9154}"
: "${READY_TIMEOUT:=30}"
: "${RELOAD_INTERVAL:=0.25}"
: "${RESULTS:=$BENCH/results/$(date +%Y%m%d-%H%M%S)}"
UPSTREAM_NAME=upstream.bench.test
GEN="$BENCH/gen"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ---- isolation: a fresh network namespace, so no packet can leave the machine or hit a host service
if [[ $NETNS == 1 && -z ${BENCH_IN_NETNS:-} ]]; then
  if [[ $(id -u) == 0 ]] && command -v unshare >/dev/null && unshare --net true 2>/dev/null; then
    export BENCH_IN_NETNS=1 RESULTS
    exec unshare --net -- "$BASH" "$0" "$@"
  fi
  log "no private network namespace (needs root and unshare): running on the host's loopback"
fi
if [[ -n ${BENCH_IN_NETNS:-} ]]; then ip link set lo up || die "cannot bring lo up in the namespace"; fi

for t in dnsperf dig unbound unbound-checkconf openssl node; do
  command -v "$t" >/dev/null || die "missing $t (apt-get install dnsperf bind9-dnsutils unbound openssl)"
done
[[ -f $ROOT/dist/cli.js ]] || die "no $ROOT/dist/cli.js: run npm run build (npm run bench does)"
if [[ $PIN == 1 ]] && { ! command -v taskset >/dev/null || (( $(getconf _NPROCESSORS_ONLN) < 2 )); }; then
  log "pinning off (needs taskset and 2 CPUs)"; PIN=0
fi

# ---- generated data (idempotent; delete bench/gen to regenerate) ---------------------------------
mkdir -p "$GEN"
if [[ ! -s $GEN/cert.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$GEN/key.pem" -out "$GEN/cert.pem" -days 3650 -subj "/CN=$UPSTREAM_NAME" \
    -addext "subjectAltName=DNS:$UPSTREAM_NAME,IP:127.0.0.1" 2>/dev/null || die "openssl failed"
fi
PIN_B64=$(openssl x509 -in "$GEN/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der |
  openssl dgst -sha256 -binary | base64)
if [[ ! -s $GEN/zone.conf || "$(head -1 "$GEN/zone.conf")" != "# names=$NAMES" ]]; then
  {
    echo "# names=$NAMES"
    echo 'local-zone: "bench.test." static'
    echo 'local-data: "bench.test. 300 IN SOA ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 300"'
    echo 'local-data: "bench.test. 300 IN NS ns.bench.test."'
    echo 'local-data: "ns.bench.test. 300 IN A 198.18.255.254"'
    # addresses from the RFC 2544 benchmarking range: never contacted
    awk -v n="$NAMES" 'BEGIN{for(i=1;i<=n;i++) printf "local-data: \"h%d.bench.test. 300 IN A 198.18.%d.%d\"\n", i, int(i/256)%256, i%256}'
    # every *.miss.bench.test answers: unlimited unique names at no memory cost
    echo 'local-zone: "miss.bench.test." redirect'
    echo 'local-data: "miss.bench.test. 300 IN A 198.19.0.1"'
  } > "$GEN/zone.conf.tmp" && mv "$GEN/zone.conf.tmp" "$GEN/zone.conf"
fi
[[ -s $GEN/q-hit.txt && $(wc -l < "$GEN/q-hit.txt") -eq $HIT_NAMES ]] ||
  awk -v n="$HIT_NAMES" 'BEGIN{for(i=1;i<=n;i++) printf "h%d.bench.test A\n", i}' > "$GEN/q-hit.txt"
[[ -s $GEN/q-miss.txt && $(wc -l < "$GEN/q-miss.txt") -eq $MISS_NAMES ]] ||
  awk -v n="$MISS_NAMES" 'BEGIN{for(i=1;i<=n;i++) printf "m%d.miss.bench.test A\n", i}' > "$GEN/q-miss.txt"

RUN="$RESULTS/run"; mkdir -p "$RUN" || die "cannot create $RUN"

# ---- processes: every one we start is tracked by PID and stopped by PID -------------------------
PIDS=()
stop_pid() {  # TERM, KILL after 5 s
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
forget_pid() { local p keep=(); for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
cleanup() { local p; for p in "${PIDS[@]}"; do stop_pid "$p"; done; PIDS=(); }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

pinned() {  # pinned CPU cmd...: exec (so $! of "pinned ... &" is the command itself)
  local cpu=$1; shift
  if [[ $PIN == 1 ]]; then exec taskset -c "$cpu" "$@"; else exec "$@"; fi
}
pin_run() { local cpu=$1; shift; if [[ $PIN == 1 ]]; then taskset -c "$cpu" "$@"; else "$@"; fi; }

render() {  # render TEMPLATE CACHE -> stdout, every {placeholder} substituted
  local s k
  s=$(cat "$1")
  declare -A ph=([port]=$GATEWAY_PORT [upstream_port]=$UPSTREAM_PORT [upstream_plain_port]=$UPSTREAM_PLAIN_PORT
    [upstream_name]=$UPSTREAM_NAME [pin]=$PIN_B64 [ca]=$GEN/cert.pem [key]=$GEN/key.pem [gen]=$GEN
    [rundir]=$RUN [cache]=$2 [admin_port]=$ADMIN_PORT)
  for k in "${!ph[@]}"; do s=${s//"{$k}"/"${ph[$k]}"}; done
  printf '%s\n' "$s"
}

dig_a() { dig +time=1 +tries=1 +short @127.0.0.1 -p "$1" "$2" A 2>/dev/null; }
wait_answer() {  # wait_answer PORT PID: until h1.bench.test resolves (bounded by READY_TIMEOUT)
  local end=$((SECONDS + READY_TIMEOUT))
  while ((SECONDS < end)); do
    kill -0 "$2" 2>/dev/null || return 1
    [[ $(dig_a "$1" h1.bench.test) == 198.18.0.1 ]] && return 0
    sleep 0.2
  done
  return 1
}

# ---- the upstream --------------------------------------------------------------------------------
mkdir -p "$RUN/upstream"
render "$BENCH/upstream-unbound.conf" false > "$RUN/upstream/unbound.conf"
unbound-checkconf "$RUN/upstream/unbound.conf" >/dev/null || die "upstream config invalid: $RUN/upstream/unbound.conf"
pinned "$LOADGEN_CPU" unbound -d -c "$RUN/upstream/unbound.conf" > "$RUN/upstream/log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
wait_answer "$UPSTREAM_PLAIN_PORT" "$UP_PID" || die "unbound did not answer (see $RUN/upstream/log)"
log "unbound up (pid $UP_PID): DoT 127.0.0.1:$UPSTREAM_PORT, plain 127.0.0.1:$UPSTREAM_PLAIN_PORT, pin $PIN_B64"

# ---- measurement ---------------------------------------------------------------------------------
TSV="$RESULTS/results.tsv"
printf 'run\tmode\tqps\tsent\tlost\terrors\tavg_ms\treloads\n' > "$TSV"

reload_loop() {  # reload_loop PID CONF: swap in the other config and SIGHUP, every RELOAD_INTERVAL
  local pid=$1 conf=$2 n=0 max
  max=$(awk -v d="$DURATION" -v i="$RELOAD_INTERVAL" 'BEGIN{printf "%d", d/i + 20}')   # bounded
  while ((n < max)) && kill -0 "$pid" 2>/dev/null; do
    sleep "$RELOAD_INTERVAL"
    if ((n % 2 == 0)); then cp "$conf.b" "$conf.tmp"; else cp "$conf.a" "$conf.tmp"; fi
    mv -f "$conf.tmp" "$conf"        # atomic rename, as editors and ConfigMaps do
    kill -HUP "$pid" 2>/dev/null || break
    n=$((n + 1))
    echo "$n" > "$conf.reloads"
  done
}

measure() {  # measure NAME PORT QUERYFILE MODE [RELOAD_PID RELOAD_CONF]
  local name=$1 port=$2 file=$3 mode=$4 out="$RUN/$1.dnsperf.txt" rpid="" reloads="-"
  if [[ -n ${5:-} ]]; then
    echo 0 > "$6.reloads"
    reload_loop "$5" "$6" & rpid=$!; PIDS+=("$rpid")
  fi
  pin_run "$LOADGEN_CPU" dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$file" -l "$DURATION" \
    -c "$CLIENTS" -q "$OUTSTANDING" -t "$TIMEOUT" $DNSPERF_OPTS > "$out" 2>&1
  if [[ -n $rpid ]]; then stop_pid "$rpid"; forget_pid "$rpid"; reloads=$(cat "$6.reloads"); fi
  local sent completed lost qps avg noerror
  sent=$(awk '/Queries sent:/{print $3}' "$out"); completed=$(awk '/Queries completed:/{print $3}' "$out")
  lost=$(awk '/Queries lost:/{print $3}' "$out"); qps=$(awk '/Queries per second:/{printf "%.0f", $4}' "$out")
  avg=$(awk '/Average Latency/{printf "%.3f", $4*1000; exit}' "$out")   # the first one: query latency, not TCP connection latency
  noerror=$(awk '/Response codes:/{for(i=3;i<=NF;i++) if($i=="NOERROR" || $i=="NOERROR,") {v=$(i+1); gsub(/[^0-9]/,"",v); print v}}' "$out")
  [[ -z $sent ]] && log "dnsperf failed for $name: $(tail -3 "$out")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$mode" "${qps:--}" "${sent:--}" "${lost:--}" \
    "$(( ${completed:-0} - ${noerror:-0} ))" "${avg:--}" "$reloads" >> "$TSV"
  log "  $name ($mode): qps=${qps:--} sent=${sent:--} lost=${lost:--} avg=${avg:--}ms reloads=$reloads"
}

run_gateway() {  # run_gateway NAME CACHE QUERYFILE PRIME
  local name=$1 cache=$2 file=$3 prime=$4 d="$RUN/$1" conf pid
  mkdir -p "$d"; conf="$d/config.yaml"
  render "$BENCH/gateway.yaml" "$cache" > "$conf.a"
  render "$BENCH/gateway-reload.yaml" "$cache" > "$conf.b"
  cp "$conf.a" "$conf"
  node "$ROOT/dist/cli.js" check "$conf.a" && node "$ROOT/dist/cli.js" check "$conf.b" ||
    { log "$name: config rejected by dns-tool check"; return 1; }
  pinned "$PROXY_CPU" node "$ROOT/dist/cli.js" --config "$conf" > "$d/log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  if ! wait_answer "$GATEWAY_PORT" "$pid"; then
    log "$name: gateway did not answer within ${READY_TIMEOUT}s; log tail:"; tail -5 "$d/log" >&2
    stop_pid "$pid"; forget_pid "$pid"; return 1
  fi
  log "$name: gateway up (pid $pid, cache $cache)"
  if [[ $prime == 1 ]]; then   # fill the cache: two passes over the working set at a gentle rate
    pin_run "$LOADGEN_CPU" dnsperf -m "$MODE" -s 127.0.0.1 -p "$GATEWAY_PORT" -d "$file" -n 2 -Q 5000 \
      -t "$TIMEOUT" $DNSPERF_OPTS > "$d/prime.txt" 2>&1
  fi
  if ((RELOAD)); then measure "$name" "$GATEWAY_PORT" "$file" "$MODE" "$pid" "$conf"
  else measure "$name" "$GATEWAY_PORT" "$file" "$MODE"; fi
  if ((RELOAD)) && command -v curl >/dev/null; then
    curl -s --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" | grep '^dns_tool_config_reloads_total' \
      | sed "s/^/  $name: /" >&2 || true
  fi
  kill -0 "$pid" 2>/dev/null || log "$name: gateway died during the run (see $d/log)"
  stop_pid "$pid"; forget_pid "$pid"
}

log "direct: dnsperf -> unbound plain port (reference)"
# the reference runs unbound where the gateway would run, so both get one core of their own
[[ $PIN == 1 ]] && taskset -a -p -c "$PROXY_CPU" "$UP_PID" >/dev/null
measure direct "$UPSTREAM_PLAIN_PORT" "$GEN/q-miss.txt" "$MODE"
[[ $PIN == 1 ]] && taskset -a -p -c "$LOADGEN_CPU" "$UP_PID" >/dev/null
run_gateway passthrough false "$GEN/q-miss.txt" 0
run_gateway cache-hit true "$GEN/q-hit.txt" 1

cleanup

# ---- report --------------------------------------------------------------------------------------
{
  echo "## dns-tool benchmark — $(basename "$RESULTS")"
  echo
  echo "    $(date -Is); $(uname -r); $(getconf _NPROCESSORS_ONLN) CPUs; node $(node --version);" \
    "unbound $(unbound -V 2>/dev/null | awk '/^Version/{print $2}'); netns ${BENCH_IN_NETNS:-0}; pin $PIN"
  echo "    dnsperf -m $MODE -c $CLIENTS -q $OUTSTANDING -t $TIMEOUT -l $DURATION $DNSPERF_OPTS; reload ${RELOAD}"
  echo
  echo "| run | mode | QPS | sent | lost | errors | avg ms | vs direct | reloads |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' 'NR==2{ref=$3} NR>1{ratio=(ref>0 && $3+0>0) ? sprintf("%.2f", $3/ref) : "-";
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, ratio, $8}' "$TSV"
} > "$RESULTS/results.md"
echo
cat "$RESULTS/results.md"
log "results: $RESULTS/results.md (dnsperf outputs and logs: $RUN/)"
