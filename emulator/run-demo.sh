#!/usr/bin/env bash
# Starts the hub emulator and the gateway in front of it on loopback, prints
# how to call the gateway, and stops both on Ctrl-C.  Called by "make run".

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run="$root/build/run"
mkdir -p "$run"

for port in 8080 8443 8444; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use; stop what listens there first" >&2
        exit 1
    fi
done

sed -e "s|@ROOT@|$root|g" -e "s|@RUN@|$run|g" "$root/conf/demo.conf" \
    > "$run/nginx.conf"

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo
    echo "stopped the gateway and the hub emulator"
}
trap cleanup INT TERM EXIT

python3 "$root/emulator/hub_emulator.py" \
    --listen 127.0.0.1:8443 --control 127.0.0.1:8444 \
    --cert "$root/build/certs/hub.pem" --key "$root/build/certs/hub.key" \
    --hub testhub.azure-devices.net \
    --policies "$root/t/data/hub-policies.json" \
    --seed "$root/t/data/seed.json" --log "$run/hub-requests.jsonl" \
    > "$run/emulator.out" 2> "$run/emulator.log" &
pids+=($!)

for _ in $(seq 1 100); do
    grep -q '^hub-emulator ready' "$run/emulator.out" 2>/dev/null && break
    sleep 0.1
done
grep -q '^hub-emulator ready' "$run/emulator.out" || {
    cat "$run/emulator.log" >&2; exit 1; }

/usr/sbin/nginx -p "$run" -c "$run/nginx.conf" -e "$run/error.log" &
pids+=($!)

for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null && break
    sleep 0.1
done

cat <<MSG

  hub emulator   https://127.0.0.1:8443  (testhub.azure-devices.net, TLS)
                 control API http://127.0.0.1:8444 (GET /requests, /state)
  gateway        http://127.0.0.1:8080   (config: build/run/nginx.conf)
  logs           build/run/error.log, build/run/access.log

Seeded: device dev1 with modules mod1 and \$edgeAgent, device dev2.

Update a device twin (the gateway signs; the caller holds no hub key):

  curl -si -X PATCH 'http://127.0.0.1:8080/twins/dev1?api-version=2021-04-12' \\
       -H 'Content-Type: application/json' \\
       -d '{"tags":{"location":{"city":"Bergen"}},"properties":{"desired":{"telemetry":{"interval":60}}}}'

Update with a stale etag (version 1's): the hub's 412 PreconditionFailed:

  curl -si -X PATCH 'http://127.0.0.1:8080/twins/dev1/modules/mod1' \\
       -H 'Content-Type: application/json' -H 'If-Match: "AAAAAAAAAAE="' \\
       -d '{"properties":{"desired":{"mode":"eco"}}}'

  (run it twice: the first one applies, the second one is stale)

Read a module twin:

  curl -si 'http://127.0.0.1:8080/twins/dev1/modules/mod1'

A refused patch (a '\$' in a key), answered by the gateway itself:

  curl -si -X PATCH 'http://127.0.0.1:8080/twins/dev1' \\
       -H 'Content-Type: application/json' -d '{"tags":{"\$bad":1}}'

Press Ctrl-C to stop.
MSG

wait -n "${pids[@]}"
