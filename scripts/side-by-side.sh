# What the side-by-side scripts (compare-webhook, idle) share, sourced from the checkout's root:
# the switchyard build to run (SWITCHYARD_BIN, e.g. an older revision's for a before/after
# figure; else this checkout's release build), a temp dir `work` removed at exit with the
# processes listed in `pids`, free loopback ports, and waiting for a server to answer.
if [[ -n "${SWITCHYARD_BIN:-}" ]]; then
  bin="$SWITCHYARD_BIN"
else
  cargo build --release --locked -q -p switchyard
  bin="$PWD/target/release/switchyard"
fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "not up: $1" >&2; exit 1; }
