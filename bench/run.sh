#!/usr/bin/env bash
# dns-tool benchmark: throughput (closed loop), latency at a fixed rate (open loop) and peak memory of
# the gateway, each beside a reference (unbound directly, optionally bare Node baselines), all on loopback.
#
#   npm run bench                      # build, then this script: quick set (WORKLOADS below), 10 s each
#   DURATION=5 bash bench/run.sh       # shorter
#   bash bench/run.sh --full           # every workload, plus --baselines and --metrics-off
#   bash bench/run.sh --tcp            # dnsperf -> gateway (and unbound) over TCP
#   bash bench/run.sh --reload         # SIGHUP a rewritten config every 250 ms during each gateway run
#   bash bench/run.sh --baselines      # add bare-fwd / bare-resp reference rows (bench/baselines/)
#   bash bench/run.sh --metrics-off    # repeat passthrough + cache-hit without the admin: section
#   bash bench/run.sh --workers N      # gateway rows with `workers: N` in the config
#   WORKLOADS="passthrough fill" bash bench/run.sh   # any of: passthrough cache-hit cache-hit6 latmiss lathit fill
#
# See bench/README.md for what is measured, how to read it, and the knobs.
set -uo pipefail
shopt -u patsub_replacement 2>/dev/null || true   # bash 5.2: '&' in ${s//x/y} replacements must stay literal

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
ALL_WORKLOADS="passthrough cache-hit cache-hit6 latmiss lathit fill"
RELOAD=0 MODE=udp BASELINES=0 METRICS_OFF=0 WORKERS="" FULL=0
ARGS=("$@")
while (($#)); do
  case $1 in
    --reload) RELOAD=1 ;;
    --tcp) MODE=tcp ;;
    --baselines) BASELINES=1 ;;
    --metrics-off) METRICS_OFF=1 ;;
    --full) FULL=1 ;;
    --workers) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "--workers needs a positive integer" >&2; exit 2; }
      WORKERS=$2; shift ;;
    --workers=*) WORKERS=${1#--workers=}
      [[ $WORKERS =~ ^[1-9][0-9]*$ ]] || { echo "--workers needs a positive integer" >&2; exit 2; } ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if ((FULL)); then BASELINES=1 METRICS_OFF=1; : "${WORKLOADS:=$ALL_WORKLOADS}"; fi

: "${WORKLOADS:=passthrough cache-hit cache-hit6 latmiss lathit}"   # the quick set; --full adds fill
: "${DURATION:=10}"        # seconds per closed-loop run
: "${LAT_DURATION:=$DURATION}"  # seconds per fixed-rate latency run
: "${LAT_QPS:=1000}"       # dnsperf -Q of latmiss / lathit
: "${CACHE_ENTRIES:=100000}"   # cache.max_entries of every gateway run; fill stores exactly this many
: "${FILL_QPS:=5000}"      # dnsperf -Q of fill
: "${CLIENTS:=10}"         # dnsperf -c
: "${OUTSTANDING:=200}"    # dnsperf -q
: "${TIMEOUT:=2}"          # dnsperf -t: unanswered after this long = lost
: "${DNSPERF_OPTS:=-e}"    # EDNS0 on, like real stubs
: "${NAMES:=100000}"       # static names h1..hN.bench.test
: "${HIT_NAMES:=1000}"     # cache-hit working set
: "${MISS_NAMES:=500000}"  # unique names for pass-through (dnsperf wraps around; cache off, so still misses)
: "${NETNS:=1}"            # 1 = private network namespace with only lo (needs root + unshare)
: "${PIN:=1}"              # 1 = taskset: gateway on GATEWAY_CPUS, dnsperf + unbound on LOADGEN_CPU
: "${PROXY_CPU:=1}"
: "${LOADGEN_CPU:=0}"
: "${UPSTREAM_PORT:=8853}"
: "${UPSTREAM_PLAIN_PORT:=5300}"
: "${GATEWAY_PORT:=5401}"
: "${REF_PORT:=5402}"      # bare-fwd / bare-resp
: "${ADMIN_PORT:=9154}"
: "${READY_TIMEOUT:=30}"
: "${RELOAD_INTERVAL:=0.25}"
: "${RESULTS:=$BENCH/results/$(date +%Y%m%d-%H%M%S)}"
UPSTREAM_NAME=upstream.bench.test
GEN="$BENCH/gen"
SERVER=127.0.0.1           # where dnsperf sends; the cache-hit6 row sets ::1 (an IPv6 client)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

for w in $WORKLOADS; do
  [[ " $ALL_WORKLOADS " == *" $w "* ]] || die "unknown workload '$w' in WORKLOADS (known: $ALL_WORKLOADS)"
done
has_workload() { [[ " $WORKLOADS " == *" $1 "* ]]; }
for v in DURATION LAT_DURATION LAT_QPS CACHE_ENTRIES FILL_QPS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done

# ---- isolation: a fresh network namespace, so no packet can leave the machine or hit a host service
if [[ $NETNS == 1 && -z ${BENCH_IN_NETNS:-} ]]; then
  if [[ $(id -u) == 0 ]] && command -v unshare >/dev/null && unshare --net true 2>/dev/null; then
    export BENCH_IN_NETNS=1 RESULTS WORKLOADS
    exec unshare --net -- "$BASH" "$0" "${ARGS[@]}"
  fi
  log "no private network namespace (needs root and unshare): running on the host's loopback"
fi
if [[ -n ${BENCH_IN_NETNS:-} ]]; then ip link set lo up || die "cannot bring lo up in the namespace"; fi

for t in dnsperf dig unbound unbound-checkconf openssl node ps; do
  command -v "$t" >/dev/null || die "missing $t (apt-get install dnsperf bind9-dnsutils unbound openssl procps)"
done
[[ -f $ROOT/dist/cli.js ]] || die "no $ROOT/dist/cli.js: run npm run build (npm run bench does)"
NCPU=$(getconf _NPROCESSORS_ONLN)
if [[ $PIN == 1 ]] && { ! command -v taskset >/dev/null || ((NCPU < 2)); }; then
  log "pinning off (needs taskset and 2 CPUs)"; PIN=0
fi
# The gateway's CPUs: one core (PROXY_CPU) as every reference gets; with workers > 1 every core, or
# N processes would share one core and measure nothing but their overhead (override: GATEWAY_CPUS).
if [[ -z ${GATEWAY_CPUS:-} ]]; then
  if [[ -n $WORKERS ]] && ((WORKERS > 1)); then GATEWAY_CPUS="0-$((NCPU - 1))"; else GATEWAY_CPUS=$PROXY_CPU; fi
fi
PIN_NOTE=""
if [[ -n $WORKERS ]] && ((WORKERS > 1)); then
  if [[ $PIN == 1 ]]; then
    PIN_NOTE="workers=$WORKERS pinned to CPUs $GATEWAY_CPUS (references stay on CPU $PROXY_CPU, dnsperf and unbound on CPU $LOADGEN_CPU):"
    if [[ $GATEWAY_CPUS == "$PROXY_CPU" ]]; then
      PIN_NOTE+=" all workers share one core, so the rows show multi-process overhead, not scaling"
    else
      PIN_NOTE+=" the gateway shares cores with the load generator, so its QPS are not per-core numbers;"
      PIN_NOTE+=" compare only with a run under the same pinning (--workers 1 GATEWAY_CPUS=$GATEWAY_CPUS)"
    fi
  else
    PIN_NOTE="workers=$WORKERS unpinned: gateway, dnsperf and unbound compete for all cores"
  fi
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
if has_workload fill; then   # a name space of its own, one pass: every query a new cache entry
  [[ -s $GEN/q-fill.txt && $(wc -l < "$GEN/q-fill.txt") -eq $CACHE_ENTRIES ]] ||
    awk -v n="$CACHE_ENTRIES" 'BEGIN{for(i=1;i<=n;i++) printf "f%d.miss.bench.test A\n", i}' > "$GEN/q-fill.txt"
fi

RUN="$RESULTS/run"; mkdir -p "$RUN" || die "cannot create $RUN"

# ---- processes: every one we start is tracked by PID and stopped by PID -------------------------
PIDS=()
descendants() {  # all descendant PIDs of $1 (the workers of a multi-worker gateway)
  ps -e -o pid=,ppid= | awk -v root="$1" '{par[$1]=$2}
    END{in_[root]=1; ch=1; while(ch){ch=0; for(p in par) if(!(p in in_) && (par[p] in in_)){in_[p]=1; ch=1}}
        for(p in in_) if(p!=root) print p}'
}
stop_pid() {  # TERM, then KILL it and its descendants (by PID) after 5 s
  local pid=$1 kids i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kids=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  # shellcheck disable=SC2086  # word splitting of the PID list is intended
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" $kids 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
forget_pid() { local p keep=(); for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
cleanup() { local p; for p in "${PIDS[@]}"; do stop_pid "$p"; done; PIDS=(); }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

pinned() {  # pinned CPULIST cmd...: exec (so $! of "pinned ... &" is the command itself)
  local cpus=$1; shift
  if [[ $PIN == 1 ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}
pin_run() { local cpus=$1; shift; if [[ $PIN == 1 ]]; then taskset -c "$cpus" "$@"; else "$@"; fi; }

render() {  # render TEMPLATE CACHE -> stdout, every {placeholder} substituted
  local s k
  s=$(cat "$1")
  declare -A ph=([port]=$GATEWAY_PORT [upstream_port]=$UPSTREAM_PORT [upstream_plain_port]=$UPSTREAM_PLAIN_PORT
    [upstream_name]=$UPSTREAM_NAME [pin]=$PIN_B64 [ca]=$GEN/cert.pem [key]=$GEN/key.pem [gen]=$GEN
    [rundir]=$RUN [cache]=$2 [admin_port]=$ADMIN_PORT [max_entries]=$CACHE_ENTRIES)
  for k in "${!ph[@]}"; do s=${s//"{$k}"/"${ph[$k]}"}; done
  printf '%s\n' "$s"
}
without_admin() { awk '/^admin:/{skip=1; next} skip && /^[^ #]/{skip=0} !skip'; }   # drop the top-level admin: block
with_workers() { cat; [[ -z $WORKERS ]] || printf 'workers: %s\n' "$WORKERS"; }
gateway_config() {  # gateway_config TEMPLATE CACHE ADMIN(on|off) -> stdout
  if [[ $3 == off ]]; then render "$1" "$2" | without_admin | with_workers; else render "$1" "$2" | with_workers; fi
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
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }   # a TCP listener on loopback?
metric() {  # metric NAME: the sum of a metric's samples from the gateway's /metrics, or '-'
  local v
  command -v curl >/dev/null || { echo -; return; }
  v=$(curl -s --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" |
    awk -v m="$1" '$1==m || index($1, m "{")==1 {s+=$NF; n++} END{if(n) printf "%.0f", s}')
  echo "${v:--}"
}
# Peak RSS: VmHWM (the kernel's high-water mark) summed over the process tree, read just before the
# process stops, so it covers the whole run. One process: exactly its VmHWM. Workers: an upper
# bound (their peaks need not coincide).
tree_kib() {  # tree_kib PID FIELD(VmHWM|VmRSS)
  local p s=0 v
  for p in "$1" $(descendants "$1"); do
    v=$(awk -v f="$2:" '$1==f{print $2}' "/proc/$p/status" 2>/dev/null); s=$((s + ${v:-0}))
  done
  echo "$s"
}
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
CLK_TCK=$(getconf CLK_TCK)
tree_ticks() {  # tree_ticks PID: CPU time (user + system, clock ticks) of the process tree so far
  local p s=0 v
  for p in "$1" $(descendants "$1"); do
    # fields after the ")" that closes the command name: utime and stime are the 12th and 13th
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}'); s=$((s + ${v:-0}))
  done
  echo "$s"
}

# ---- the upstream --------------------------------------------------------------------------------
mkdir -p "$RUN/upstream"
render "$BENCH/upstream-unbound.conf" false > "$RUN/upstream/unbound.conf"
unbound-checkconf "$RUN/upstream/unbound.conf" >/dev/null || die "upstream config invalid: $RUN/upstream/unbound.conf"
pinned "$LOADGEN_CPU" unbound -d -c "$RUN/upstream/unbound.conf" > "$RUN/upstream/log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
wait_answer "$UPSTREAM_PLAIN_PORT" "$UP_PID" || die "unbound did not answer (see $RUN/upstream/log)"
log "unbound up (pid $UP_PID): DoT 127.0.0.1:$UPSTREAM_PORT, plain 127.0.0.1:$UPSTREAM_PLAIN_PORT, pin $PIN_B64"

# The config every gateway row uses must pass `dns-tool check` before anything is measured; with
# --workers this is where a build without the key says so.
mkdir -p "$RUN/check"
gateway_config "$BENCH/gateway.yaml" true on > "$RUN/check/config.yaml"
grep -q '^admin:' "$RUN/check/config.yaml" || die "bench/gateway.yaml must have an admin: section (metrics on is the default)"
if ! node "$ROOT/dist/cli.js" check "$RUN/check/config.yaml" > /dev/null 2> "$RUN/check/stderr"; then
  if [[ -n $WORKERS ]] && grep -qi workers "$RUN/check/stderr"; then
    die "--workers $WORKERS: dns-tool check rejects the config with 'workers: $WORKERS' added (a build without the top-level workers key, or a value out of range): $(head -3 "$RUN/check/stderr")"
  fi
  die "the benchmark config is rejected by dns-tool check: $(head -3 "$RUN/check/stderr")"
fi
[[ -n $PIN_NOTE ]] && log "NOTE: $PIN_NOTE"
if ((BASELINES)) && [[ $MODE == tcp ]]; then
  log "NOTE: --baselines skipped with --tcp (bare-forwarder is UDP only; bare-responder's TCP is not a DNS server)"
  BASELINES=0; BASELINES_SKIPPED=1
fi

# ---- measurement ---------------------------------------------------------------------------------
TSV="$RESULTS/results.tsv"
FILL_TSV="$RESULTS/fill.tsv"
printf 'run\tkind\tworkload\tmode\trate\tqps\tsent\tlost\terrors\tavg_ms\tp50_ms\tp90_ms\tp99_ms\tmax_ms\tpeak_rss_mib\tadmin\treloads\tnote\tcpu_us_per_query\n' > "$TSV"
printf 'run\tsent\tstored\tlost\tcache_misses\tstart_rss_mib\tpeak_rss_mib\tbytes_per_entry\n' > "$FILL_TSV"

reload_loop() {  # reload_loop PID CONF DURATION: swap in the other config and SIGHUP, every RELOAD_INTERVAL
  local pid=$1 conf=$2 n=0 max
  max=$(awk -v d="$3" -v i="$RELOAD_INTERVAL" 'BEGIN{printf "%d", d/i + 20}')   # bounded
  while ((n < max)) && kill -0 "$pid" 2>/dev/null; do
    sleep "$RELOAD_INTERVAL"
    if ((n % 2 == 0)); then cp "$conf.b" "$conf.tmp"; else cp "$conf.a" "$conf.tmp"; fi
    mv -f "$conf.tmp" "$conf"        # atomic rename, as editors and ConfigMaps do
    kill -HUP "$pid" 2>/dev/null || break
    n=$((n + 1))
    echo "$n" > "$conf.reloads"
  done
}

# Percentiles from dnsperf -v per-query lines ("> NOERROR name type 0.000123"); lost queries
# ("> T name type") have no time and are left out (they are counted in `lost`). Nearest rank.
percentiles() {
  awk '/^> [A-Z]+ / && $NF ~ /^[0-9]+(\.[0-9]+)?$/ {print $NF*1000}' "$1" | sort -n | awk '{v[NR]=$1}
    function q(p){i=int(p*NR+0.5); if(i<1)i=1; if(i>NR)i=NR; return v[i]}
    END{if(NR) printf "%.3f\t%.3f\t%.3f\t%.3f", q(.5),q(.9),q(.99),v[NR]; else printf "-\t-\t-\t-"}'
}

# measure ROW KIND WORKLOAD PORT QUERYFILE PID ADMIN [RELOAD_CONF]
#   KIND: direct | gateway | ref. WORKLOAD: thr (closed loop) | lat (fixed rate, -v) | fill (one pass,
#   fixed rate). PID: the process whose tree's peak RSS is reported ('-' = none). Sets M_* for callers.
measure() {
  local row=$1 kind=$2 wl=$3 port=$4 file=$5 pid=$6 admin=$7 rconf=${8:-} out="$RUN/$1.dnsperf.txt"
  local args rate rpid="" reloads="-" dur
  case $wl in
    thr)  dur=$DURATION;     rate=closed;   args=(-l "$dur" -c "$CLIENTS" -q "$OUTSTANDING") ;;
    lat)  dur=$LAT_DURATION; rate=$LAT_QPS; args=(-l "$dur" -c "$CLIENTS" -q "$OUTSTANDING" -Q "$LAT_QPS" -v) ;;
    fill) rate=$FILL_QPS
          dur=$((CACHE_ENTRIES / FILL_QPS * 2 + 30))   # bound: twice the nominal time, plus slack
          args=(-n 1 -l "$dur" -c "$CLIENTS" -q "$OUTSTANDING" -Q "$FILL_QPS") ;;
  esac
  if [[ -n $rconf ]]; then
    echo 0 > "$rconf.reloads"
    reload_loop "$pid" "$rconf" "$dur" & rpid=$!; PIDS+=("$rpid")
  fi
  local ticks0=0 cpu="-"
  [[ $pid != - ]] && ticks0=$(tree_ticks "$pid")
  # shellcheck disable=SC2086  # DNSPERF_OPTS is a list of options
  pin_run "$LOADGEN_CPU" dnsperf -m "$MODE" -s "$SERVER" -p "$port" -d "$file" -t "$TIMEOUT" $DNSPERF_OPTS \
    "${args[@]}" > "$out" 2>&1
  if [[ -n $rpid ]]; then stop_pid "$rpid"; forget_pid "$rpid"; reloads=$(cat "$rconf.reloads"); fi
  local completed avg pct="-	-	-	-" rss="-" note=""
  M_SENT=$(awk '/Queries sent:/{print $3}' "$out"); completed=$(awk '/Queries completed:/{print $3}' "$out")
  M_LOST=$(awk '/Queries lost:/{print $3}' "$out"); M_QPS=$(awk '/Queries per second:/{printf "%.0f", $4}' "$out")
  avg=$(awk '/Average Latency/{printf "%.3f", $4*1000; exit}' "$out")   # the first one: query latency, not TCP connection latency
  M_NOERROR=$(awk '/Response codes:/{for(i=3;i<=NF;i++) if($i=="NOERROR" || $i=="NOERROR,") {v=$(i+1); gsub(/[^0-9]/,"",v); print v}}' "$out")
  M_NOERROR=${M_NOERROR:-0}
  [[ -z $M_SENT ]] && { note="dnsperf-failed"; log "dnsperf failed for $row: $(tail -3 "$out")"; }
  [[ $wl == lat ]] && pct=$(percentiles "$out")
  if [[ $pid != - ]]; then
    # the process's CPU per answered query: what a query costs it, whichever side limits the QPS
    if kill -0 "$pid" 2>/dev/null; then
      cpu=$(awk -v t="$(( $(tree_ticks "$pid") - ticks0 ))" -v hz="$CLK_TCK" -v n="${completed:-0}" \
        'BEGIN{if(n>0) printf "%.1f", t*1e6/hz/n; else print "-"}')
    fi
    if kill -0 "$pid" 2>/dev/null; then rss=$(mib "$(tree_kib "$pid" VmHWM)")
    else note+="${note:+ }died"; log "$row: process $pid died during the run"; fi
  fi
  M_RSS=$rss
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$kind" "$wl" "$MODE" "$rate" \
    "${M_QPS:--}" "${M_SENT:--}" "${M_LOST:--}" "$(( ${completed:-0} - M_NOERROR ))" "${avg:--}" "$pct" \
    "$rss" "$admin" "$reloads" "${note:--}" "$cpu" >> "$TSV"   # pct is four columns
  log "  $row: qps=${M_QPS:--} sent=${M_SENT:--} lost=${M_LOST:--} avg=${avg:--}ms$([[ $wl == lat ]] && echo " p50/p90/p99/max=${pct//	//}ms") rss=${rss}MiB reloads=$reloads"
}

direct_run() {  # direct_run ROW WORKLOAD QUERYFILE: dnsperf -> unbound's plain port
  # the reference runs unbound where the gateway would run, so both get one core of their own
  [[ $PIN == 1 ]] && taskset -a -p -c "$PROXY_CPU" "$UP_PID" >/dev/null
  measure "$1" direct "$2" "$UPSTREAM_PLAIN_PORT" "$3" - -
  [[ $PIN == 1 ]] && taskset -a -p -c "$LOADGEN_CPU" "$UP_PID" >/dev/null
}

prime() {  # prime PORT QUERYFILE DIR: fill the cache, two passes over the working set at a gentle rate
  pin_run "$LOADGEN_CPU" dnsperf -m "$MODE" -s "$SERVER" -p "$1" -d "$2" -n 2 -Q 5000 -l 60 \
    -t "$TIMEOUT" $DNSPERF_OPTS > "$3/prime.txt" 2>&1
}

# run_gateway ROW WORKLOAD CACHE QUERYFILE PRIME ADMIN(on|off): a fresh gateway process per row
run_gateway() {
  local row=$1 wl=$2 cache=$3 file=$4 prime=$5 admin=$6 d="$RUN/$1" conf pid start_kib=0
  mkdir -p "$d"; conf="$d/config.yaml"
  gateway_config "$BENCH/gateway.yaml" "$cache" "$admin" > "$conf.a"
  gateway_config "$BENCH/gateway-reload.yaml" "$cache" "$admin" > "$conf.b"
  cp "$conf.a" "$conf"
  node "$ROOT/dist/cli.js" check "$conf.a" > "$d/check.txt" 2>&1 && node "$ROOT/dist/cli.js" check "$conf.b" >> "$d/check.txt" 2>&1 ||
    { log "$row: config rejected by dns-tool check: $(tail -3 "$d/check.txt")"; return 1; }
  pinned "$GATEWAY_CPUS" node "$ROOT/dist/cli.js" --config "$conf" > "$d/log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  if ! wait_answer "$GATEWAY_PORT" "$pid"; then
    log "$row: gateway did not answer within ${READY_TIMEOUT}s; log tail:"; tail -5 "$d/log" >&2
    stop_pid "$pid"; forget_pid "$pid"; return 1
  fi
  # the admin column says what was verified, not what was configured
  local admin_seen=off
  port_open "$ADMIN_PORT" && admin_seen=on
  [[ $admin_seen == "$admin" ]] || log "$row: WARNING: admin configured $admin but the port is $admin_seen"
  log "$row: gateway up (pid $pid, cache $cache, admin $admin_seen${WORKERS:+, workers $WORKERS})"
  [[ $prime == 1 ]] && prime "$GATEWAY_PORT" "$file" "$d"
  local misses_before=-
  if [[ $wl == fill ]]; then   # the readiness probe was a miss too: count only the fill's
    start_kib=$(tree_kib "$pid" VmRSS)
    [[ $admin_seen == on ]] && misses_before=$(metric dns_tool_cache_misses_total)
  fi
  if ((RELOAD)); then measure "$row" gateway "$wl" "$GATEWAY_PORT" "$file" "$pid" "$admin_seen" "$conf"
  else measure "$row" gateway "$wl" "$GATEWAY_PORT" "$file" "$pid" "$admin_seen"; fi
  if [[ $wl == fill ]]; then
    local misses=- after
    if [[ $misses_before != - ]]; then
      after=$(metric dns_tool_cache_misses_total)
      [[ $after != - ]] && misses=$((after - misses_before))
    fi
    # stored = answered NOERROR: each such miss is written to the cache, and exactly
    # CACHE_ENTRIES distinct names fit without eviction
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "${M_SENT:--}" "$M_NOERROR" "${M_LOST:--}" "$misses" \
      "$(mib "$start_kib")" "$M_RSS" \
      "$(awk -v p="$M_RSS" -v s="$start_kib" -v n="$M_NOERROR" 'BEGIN{if(n>0 && p+0>0) printf "%.0f", (p*1024-s)*1024/n; else print "-"}')" \
      >> "$FILL_TSV"
  fi
  if ((RELOAD)) && [[ $admin_seen == on ]] && command -v curl >/dev/null; then
    curl -s --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" | grep '^dns_tool_config_reloads_total' \
      | sed "s/^/  $row: /" >&2 || true
  fi
  stop_pid "$pid"; forget_pid "$pid"
}

# run_ref ROW WORKLOAD PRIME-FILE|- SCRIPT ARGS...: a bare Node baseline on REF_PORT, one core like the gateway
run_ref() {
  local row=$1 wl=$2 file=$3 d="$RUN/$1" pid; shift 3
  mkdir -p "$d"
  pinned "$PROXY_CPU" node "$@" > "$d/log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  if ! wait_answer "$REF_PORT" "$pid"; then
    log "$row: did not answer within ${READY_TIMEOUT}s; log tail:"; tail -5 "$d/log" >&2
    stop_pid "$pid"; forget_pid "$pid"; return 1
  fi
  log "$row: up (pid $pid)"
  measure "$row" ref "$wl" "$REF_PORT" "$file" "$pid" -
  stop_pid "$pid"; forget_pid "$pid"
}
BARE_FWD=("$BENCH/baselines/bare-forwarder.mjs" "$REF_PORT" 127.0.0.1 "$UPSTREAM_PORT" "$UPSTREAM_NAME" "$GEN/cert.pem")
BARE_RESP=("$BENCH/baselines/bare-responder.mjs" "$REF_PORT")

# ---- the runs: references first, then the gateway, then the baselines -----------------------------
if has_workload passthrough || has_workload cache-hit; then
  log "direct: dnsperf -> unbound plain port (reference)"; direct_run direct thr "$GEN/q-miss.txt"
fi
has_workload latmiss && { log "direct-latmiss (reference)"; direct_run direct-latmiss lat "$GEN/q-miss.txt"; }
has_workload lathit && { log "direct-lathit (reference)"; direct_run direct-lathit lat "$GEN/q-hit.txt"; }
# each metrics-off row right after its metrics-on twin, so drift in the machine's load hits both alike
has_workload passthrough && run_gateway passthrough thr false "$GEN/q-miss.txt" 0 on
((METRICS_OFF)) && has_workload passthrough && run_gateway passthrough-nometrics thr false "$GEN/q-miss.txt" 0 off
has_workload cache-hit && run_gateway cache-hit thr true "$GEN/q-hit.txt" 1 on
((METRICS_OFF)) && has_workload cache-hit && run_gateway cache-hit-nometrics thr true "$GEN/q-hit.txt" 1 off
# the same cache hits asked from ::1: what an IPv6 client costs beside an IPv4 one (cache-hit, just before)
has_workload cache-hit6 && SERVER=::1 run_gateway cache-hit6 thr true "$GEN/q-hit.txt" 1 on
has_workload latmiss && run_gateway latmiss lat false "$GEN/q-miss.txt" 0 on
has_workload lathit && run_gateway lathit lat true "$GEN/q-hit.txt" 1 on
has_workload fill && run_gateway fill fill true "$GEN/q-fill.txt" 0 on
if ((BASELINES)); then
  has_workload passthrough && run_ref bare-fwd thr "$GEN/q-miss.txt" "${BARE_FWD[@]}"
  has_workload latmiss && run_ref bare-fwd-latmiss lat "$GEN/q-miss.txt" "${BARE_FWD[@]}"
  has_workload cache-hit && run_ref bare-resp thr "$GEN/q-hit.txt" "${BARE_RESP[@]}"
fi
if ((METRICS_OFF)) && ! has_workload passthrough && ! has_workload cache-hit; then
  log "NOTE: --metrics-off needs passthrough or cache-hit in WORKLOADS"
fi

cleanup

# ---- report --------------------------------------------------------------------------------------
{
  echo "## dns-tool benchmark — $(basename "$RESULTS")"
  echo
  echo "    $(date -Is); $(uname -r); $NCPU CPUs; node $(node --version);" \
    "unbound $(unbound -V 2>/dev/null | awk '/^Version/{print $2}'); netns ${BENCH_IN_NETNS:-0}; pin $PIN" \
    "(gateway CPUs $GATEWAY_CPUS, references CPU $PROXY_CPU, dnsperf CPU $LOADGEN_CPU)"
  echo "    dnsperf -m $MODE -c $CLIENTS -q $OUTSTANDING -t $TIMEOUT $DNSPERF_OPTS; closed loop -l $DURATION;" \
    "latency -Q $LAT_QPS -l $LAT_DURATION; cache.max_entries $CACHE_ENTRIES; workers ${WORKERS:-unset (1)}; reload $RELOAD"
  echo "    workloads: $WORKLOADS; baselines $BASELINES${BASELINES_SKIPPED:+ (skipped: --tcp)}; metrics-off $METRICS_OFF"
  [[ -n $PIN_NOTE ]] && { echo; echo "**Note:** $PIN_NOTE."; }
  # vs direct: QPS / the direct row's; vs ref: QPS / the baseline doing the same job (bare-fwd for
  # pass-through, bare-resp for cache hits)
  if awk -F'\t' 'NR>1 && $3=="thr"{f=1} END{exit !f}' "$TSV"; then
    echo
    echo "### Throughput (closed loop, ${DURATION} s)"
    echo
    echo "| run | kind | mode | QPS | sent | lost | errors | avg ms | vs direct | vs ref | peak RSS MiB | admin | reloads | CPU µs/query |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    awk -F'\t' 'NR==FNR{ if(FNR>1) q[$1]=$6; next }
      FNR>1 && $3=="thr" {
        base=$1; sub(/-nometrics$/, "", base)
        ref = base=="passthrough" ? "bare-fwd" : base=="cache-hit" ? "bare-resp" : ""
        vd = (q["direct"]>0 && $6+0>0) ? sprintf("%.2f", $6/q["direct"]) : "-"
        vr = (ref!="" && q[ref]>0 && $6+0>0) ? sprintf("%.2f", $6/q[ref]) : "-"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $4, $6, $7, $8, $9, $10, vd, vr, $15, $16, $17, $19 }' "$TSV" "$TSV"
  fi
  if awk -F'\t' 'NR>1 && $3=="lat"{f=1} END{exit !f}' "$TSV"; then
    echo
    echo "### Latency at a fixed rate (open loop, -Q ${LAT_QPS} for ${LAT_DURATION} s; percentiles of answered queries from dnsperf -v)"
    echo
    echo "| run | kind | mode | QPS | lost | errors | avg ms | p50 ms | p90 ms | p99 ms | max ms | p50 − direct ms | p99 − direct ms | peak RSS MiB | reloads | CPU µs/query |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' 'NR==FNR{ if(FNR>1){p50[$1]=$11; p99[$1]=$13}; next }
      FNR>1 && $3=="lat" {
        w = ($1 ~ /lathit$/) ? "lathit" : "latmiss"; d = "direct-" w
        a50 = ($1!=d && p50[d]!="" && p50[d]!="-" && $11!="-") ? sprintf("%+.3f", $11-p50[d]) : "-"
        a99 = ($1!=d && p99[d]!="" && p99[d]!="-" && $13!="-") ? sprintf("%+.3f", $13-p99[d]) : "-"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $4, $6, $8, $9, $10, $11, $12, $13, $14, a50, a99, $15, $17, $19 }' "$TSV" "$TSV"
  fi
  # What a query costs the gateway is its CPU time per answered query: the QPS ratio also holds the
  # load generator's and the kernel's IPv6 path, which can be the limit of the ::1 row instead.
  awk -F'\t' 'FNR>1{q[$1]=$6; c[$1]=$19} END{ if((c["cache-hit"]+0)>0 && (c["cache-hit6"]+0)>0) {
      print "\n### IPv6 client: what a cache hit asked from ::1 costs the gateway beside one from 127.0.0.1\n"
      printf "%.2f× (target: at most 1.5×): CPU per query %s µs from ::1 (cache-hit6), %s µs from 127.0.0.1 (cache-hit); QPS %s vs %s.\n", c["cache-hit6"]/c["cache-hit"], c["cache-hit6"], c["cache-hit"], q["cache-hit6"], q["cache-hit"] } }' "$TSV"
  if (( $(wc -l < "$FILL_TSV") > 1 )); then
    echo
    echo "### Memory: peak RSS with ${CACHE_ENTRIES} cached entries (fill: unique names, one pass at -Q ${FILL_QPS}$([[ -n $WORKERS ]] && ((WORKERS > 1)) && echo "; spread over $WORKERS workers' caches, up to ${CACHE_ENTRIES} each"))"
    echo
    echo "| run | sent | stored (NOERROR) | lost | cache misses (/metrics) | RSS before MiB | peak RSS MiB | (peak − before) / stored, bytes |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' 'NR>1{printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8}' "$FILL_TSV"
  fi
  if awk -F'\t' 'NR>1 && $1 ~ /-nometrics$/{f=1} END{exit !f}' "$TSV"; then
    echo
    echo "### Cost of metrics (admin: on vs the admin: section removed)"
    echo
    echo "| workload | QPS admin on | QPS admin off | on / off |"
    echo "|---|---:|---:|---:|"
    awk -F'\t' 'FNR>1{q[$1]=$6; a[$1]=$16} END{
      split("passthrough cache-hit", w, " ")
      for(i=1;i<=2;i++){ on=w[i]; off=w[i] "-nometrics"; if(!(off in q)) continue
        r = (q[on]+0>0 && q[off]+0>0) ? sprintf("%.3f", q[on]/q[off]) : "-"
        printf "| %s | %s | %s | %s |\n", w[i], q[on], q[off], r }}' "$TSV"
  fi
  if awk -F'\t' 'NR>1 && $18!="-"{f=1} END{exit !f}' "$TSV"; then
    echo
    echo "Notes: $(awk -F'\t' 'NR>1 && $18!="-"{printf "%s%s: %s", s, $1, $18; s="; "}' "$TSV")"
  fi
} > "$RESULTS/results.md"
echo
cat "$RESULTS/results.md"
log "results: $RESULTS/results.md (TSV: results.tsv, fill.tsv; dnsperf outputs, configs and logs: $RUN/)"
