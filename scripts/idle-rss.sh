#!/usr/bin/env bash
# idle-rss.sh N — resident memory per idle, logged-in MCS device.
#
# Builds ccsd, starts ccsd serve in temp data dirs (one node for N <= 15000,
# else a 3-node cluster on loopback; NODES=k overrides), records each server's
# VmRSS and Go memory gauges, connects N idle devices with `ccsd bench idle`
# processes of at most 15,000 connections each (spread over the nodes and over
# source addresses 127.0.0.2..), records the same figures once all are logged
# in, prints KB per device per server process, then stops everything it
# started (by PID) and removes the temp dirs.
#
# BASELINE=1 also measures a plain goroutine-per-connection Go TLS echo server
# (scripts/tlsbaseline) holding min(N, 15000) idle TLS connections.
# CLUSTER=0 runs the NODES servers standalone (no routes) instead.
# SETTLE=seconds to wait after "ready" before sampling (default 10).
# KEEP=1 keeps the temp dir (logs, endpoints) for a look afterwards.
set -euo pipefail

N=${1:?usage: idle-rss.sh N}
PER_GEN=15000
SETTLE=${SETTLE:-10}
cd "$(dirname "$0")/.."
if [[ -z "${NODES:-}" ]]; then
	if ((N <= PER_GEN)); then NODES=1; else NODES=3; fi
fi
TMP=$(mktemp -d /tmp/ccsd-idle-rss.XXXXXX)
PIDS=() # everything we started, stopped in reverse order by cleanup

cleanup() {
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill -TERM "${PIDS[i]}" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ -z "${KEEP:-}" ]]; then rm -rf "$TMP"; else echo "kept $TMP"; fi
}
trap cleanup EXIT

log() { echo "# $*" >&2; }

# Build.
BIN=$TMP/ccsd
go build -o "$BIN" ./cmd/ccsd

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for FILE PATTERN SECONDS: until FILE has a line matching PATTERN.
wait_for() {
	local f=$1 pat=$2 t=$3
	for ((i = 0; i < t * 10; i++)); do
		if grep -q "$pat" "$f" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "timed out waiting for $pat in $f" >&2
	cat "$f" >&2 || true
	return 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# gauges HTTP: goroutines, heap in use, stacks in use (bytes), from /metrics.
gauges() {
	curl -s "http://$1/metrics" | awk '
		/^go_goroutines / {g=$2}
		/^go_memstats_heap_inuse_bytes / {h=$2}
		/^go_memstats_stack_inuse_bytes / {s=$2}
		END {printf "%d %d %d\n", g, h, s}'
}

# Servers.
ROUTES=()
CPORTS=()
CLUSTER=${CLUSTER:-1}
if ((NODES > 1 && CLUSTER)); then
	for ((k = 0; k < NODES; k++)); do
		CPORTS+=("$(free_port)")
		ROUTES+=("nats-route://127.0.0.1:${CPORTS[k]}")
	done
fi
SRV=()
# start_node K: runs ccsd serve for node K in the background; SRV[K] is its pid.
start_node() {
	local k=$1 d=$TMP/n$1 extra=()
	mkdir -p "$d"
	if ((NODES > 1 && CLUSTER)); then
		extra=(--cluster-listen "127.0.0.1:${CPORTS[k]}" --routes "$(
			IFS=,
			echo "${ROUTES[*]}"
		)" --node-name "n$k")
	fi
	"$BIN" serve --data-dir "$d" --ccs-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --mcs-addr 127.0.0.1:0 \
		--device-addr 127.0.0.1:0 --log-level warn "${extra[@]}" >"$d/stdout" 2>>"$d/stderr" &
	PIDS+=($!)
	SRV[k]=$!
}
for ((k = 0; k < NODES; k++)); do start_node "$k"; done
# A cluster node can give up while the JetStream meta leader is still being
# elected ("creating bucket ccsd_senders: context deadline exceeded"): start
# such a node again on the same data dir, a few times.
declare -A RESTARTS
for ((try = 0; try < 600; try++)); do
	up=0
	for ((k = 0; k < NODES; k++)); do
		if grep -q " ready" "$TMP/n$k/stdout" 2>/dev/null; then
			up=$((up + 1))
		elif ! kill -0 "${SRV[k]}" 2>/dev/null; then
			wait "${SRV[k]}" || true
			RESTARTS[$k]=$((${RESTARTS[$k]:-0} + 1))
			if ((RESTARTS[$k] > 3)); then
				echo "node $k failed to start: $(tail -n 1 "$TMP/n$k/stderr") (CLUSTER=0 runs independent nodes)" >&2
				exit 1
			fi
			log "node $k exited before ready ($(tail -n 1 "$TMP/n$k/stderr")); starting it again"
			start_node "$k"
		fi
	done
	((up == NODES)) && break
	sleep 0.5
done
if ((up != NODES)); then
	echo "only $up of $NODES servers ready" >&2
	exit 1
fi
log "$NODES server(s) ready: pids ${SRV[*]}; open-file limit $(ulimit -n)"
sleep "$SETTLE"
declare -A RSS0 G0
for ((k = 0; k < NODES; k++)); do
	RSS0[$k]=$(rss_kb "${SRV[k]}")
	G0[$k]=$(gauges "$(jq -r .http "$TMP/n$k/endpoints.json")")
done

# Generators: node k gets its share of N, in processes of at most PER_GEN,
# each with 4 source addresses of its own.
# In a cluster only the first node to start creates the development sender;
# every generator uses the one that exists.
SENDER=()
for ((k = 0; k < NODES; k++)); do
	if [[ -s $TMP/n$k/dev-sender.json ]]; then
		SENDER=(--sender "$(jq -r .sender_id "$TMP/n$k/dev-sender.json")" --api-key "$(jq -r .api_key "$TMP/n$k/dev-sender.json")")
		break
	fi
done
GENS=()
GEN_NODE=()
GEN_N=()
g=0
for ((k = 0; k < NODES; k++)); do
	share=$((N / NODES + (k < N % NODES ? 1 : 0)))
	procs=$(((share + PER_GEN - 1) / PER_GEN))
	for ((j = 0; j < procs; j++)); do
		n=$((share / procs + (j < share % procs ? 1 : 0)))
		lo=$((2 + 4 * g))
		"$BIN" bench idle --data-dir "$TMP/n$k" --devices "$n" --devices-file "$TMP/gen$g.json" "${SENDER[@]}" \
			--source-ips "127.0.0.$lo-127.0.0.$((lo + 3))" >"$TMP/gen$g.out" 2>"$TMP/gen$g.err" &
		PIDS+=($!)
		GENS+=($!)
		GEN_NODE+=("$k")
		GEN_N+=("$n")
		g=$((g + 1))
	done
done
log "${#GENS[@]} generator(s) started: pids ${GENS[*]}"
for ((g = 0; g < ${#GENS[@]}; g++)); do
	wait_for "$TMP/gen$g.out" "^ready" 1800
	got=$(awk '/^ready/ {print $2}' "$TMP/gen$g.out")
	if [[ "$got" != "${GEN_N[g]}" ]]; then
		echo "generator $g: ready $got of ${GEN_N[g]}" >&2
		cat "$TMP/gen$g.err" >&2
		exit 1
	fi
	log "generator $g (node ${GEN_NODE[g]}): $(grep -h 'logged in\|generator rss' "$TMP/gen$g.err" | tr '\n' ';')"
done
sleep "$SETTLE"

echo "idle devices: $N over $NODES node(s) (cluster: $((NODES > 1 && CLUSTER))), $(nproc) cores, go $(go env GOVERSION)"
printf "%-5s %8s %9s %9s %11s %11s %11s %11s\n" node devices rss0_MB rss_MB KB/device goroutines heapKB/dev stackKB/dev
for ((k = 0; k < NODES; k++)); do
	dev=0
	for ((g = 0; g < ${#GENS[@]}; g++)); do
		if [[ ${GEN_NODE[g]} == "$k" ]]; then dev=$((dev + GEN_N[g])); fi
	done
	r1=$(rss_kb "${SRV[k]}")
	read -r g0 h0 s0 <<<"${G0[$k]}"
	read -r g1 h1 s1 <<<"$(gauges "$(jq -r .http "$TMP/n$k/endpoints.json")")"
	awk -v n="$k" -v d="$dev" -v r0="${RSS0[$k]}" -v r1="$r1" -v g0="$g0" -v g1="$g1" -v h0="$h0" -v h1="$h1" \
		-v s0="$s0" -v s1="$s1" 'BEGIN {
		printf "n%-4s %8d %9.1f %9.1f %11.2f %5d->%-5d %11.2f %11.2f\n", n, d, r0/1024, r1/1024, (r1-r0)/d,
			g0, g1, (h1-h0)/1024/d, (s1-s0)/1024/d }'
	grep -E '^(Rss|Anonymous|Private_Dirty):' "/proc/${SRV[k]}/smaps_rollup" | tr -s ' ' | tr '\n' ' ' >&2
	echo >&2
done
cli=0
for p in "${GENS[@]}"; do cli=$((cli + $(rss_kb "$p"))); done
awk -v c="$cli" -v n="$N" 'BEGIN {printf "client (bench idle) rss: %.1f KB per connection\n", c/n}'

# Stop the generators (each checks its connections are still alive).
for p in "${GENS[@]}"; do kill -TERM "$p"; done
for ((g = 0; g < ${#GENS[@]}; g++)); do
	if ! wait "${GENS[g]}"; then
		echo "generator $g: $(cat "$TMP/gen$g.out" "$TMP/gen$g.err" | tail -3)" >&2
	fi
done
alive=$(cat "$TMP"/gen*.out | awk '/^alive/ {s += $2} END {print s+0}')
echo "alive at the end: $alive of $N"

if [[ -n "${BASELINE:-}" ]]; then
	B=$((N < PER_GEN ? N : PER_GEN))
	go build -o "$TMP/tlsbaseline" ./scripts/tlsbaseline
	mkdir -p "$TMP/tb"
	"$TMP/tlsbaseline" server --dir "$TMP/tb" >"$TMP/tb/server.out" 2>&1 &
	PIDS+=($!)
	bs=$!
	for ((i = 0; i < 100; i++)); do [[ -s $TMP/tb/addr ]] && break; sleep 0.1; done
	sleep 1
	b0=$(rss_kb "$bs")
	"$TMP/tlsbaseline" client --dir "$TMP/tb" --conns "$B" \
		--source-ips "$(seq -s, -f '127.0.1.%g' 2 9)" >"$TMP/tb/client.out" 2>&1 &
	PIDS+=($!)
	bc=$!
	wait_for "$TMP/tb/client.out" "^ready" 600
	sleep "$SETTLE"
	b1=$(rss_kb "$bs")
	awk -v n="$B" -v r0="$b0" -v r1="$b1" -v got="$(awk '/^ready/ {print $2}' "$TMP/tb/client.out")" 'BEGIN {
		printf "baseline (goroutine-per-connection Go TLS echo server): %d conns, rss %.1f -> %.1f MB, %.2f KB per connection\n",
			got, r0/1024, r1/1024, (r1-r0)/n }'
	kill -TERM "$bc" "$bs"
fi
