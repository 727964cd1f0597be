#!/usr/bin/env bash
# The demo: start the built-in lab endpoint (a fake Exchange on 127.0.0.1), then run provisioner against it
# exactly as against a real server: audit (drift), a saved plan with its review script, the exact apply of that
# plan, a re-run that changes nothing, and a final audit. Run it with `make demo`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'kill "${lab_pid:-0}" 2>/dev/null || true; wait "${lab_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

provisioner lab --ready-file "$work/port" 2>"$work/lab.log" &
lab_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { cat "$work/lab.log"; echo "lab did not start" >&2; exit 1; }
port="$(cat "$work/port")"

# The lab's account; on a real server use Kerberos (kinit) or PROVISIONER_PASSWORD from a protected env file.
export PROVISIONER_PASSWORD='Lab-Passw0rd!'
# Each run logs one start and one summary line (run id, action, counts, exit code, duration): here to a file,
# shown at the end (a scheduled job uses --log-file or --log-syslog; without either they go to stderr).
export PROVISIONER_LOG_FORMAT=json PROVISIONER_LOG_FILE="$work/runs.log"
conn=(--config "$here/provisioner.toml" --server 127.0.0.1 --port "$port" --auth ntlm --username lab-admin)

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "$2"; }

step "1. Audit: who lacks Full Access? (exit 3 = drift)" "provisioner audit ${conn[*]}"
provisioner audit "${conn[@]}" || echo "(exit $?)"

step "2. Plan: read, then save the change and the exact PowerShell for review" \
  "provisioner plan grant ${conn[*]} --out change.plan"
provisioner plan grant "${conn[@]}" --out "$work/change.plan"
cat "$work/change.plan.ps1"

step "3. Apply the reviewed plan exactly (exit 7 if the state moved), with a report and the MAPI-profile list" \
  "provisioner apply change.plan ${conn[*]} --report report.json --profile-list profile.csv"
provisioner apply "$work/change.plan" "${conn[@]}" --lock-file "$work/lock" --report "$work/report.json" \
  --profile-list "$work/profile.csv"
python3 - "$work/report.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
print("report summary:", json.dumps(doc["summary"]))
for item in doc["items"][:4]:
    print(f"  {item['mailbox']:<28} {item['trustee']:<26} {item['result']}")
print(f"  ... {len(doc['items'])} items in all")
PY
echo "MAPI profile of the admin-console user (add these mailboxes to its profile):"
head -4 "$work/profile.csv"

step "4. Re-run: idempotent, nothing left to do" "provisioner grant ${conn[*]}"
provisioner grant "${conn[@]}"

step "5. Audit again: compliant (exit 0)" "provisioner audit ${conn[*]} --format csv"
provisioner audit "${conn[@]}" --format csv | head -5

step "6. The run log: one start and one summary line per run" "cat runs.log"
python3 - "$work/runs.log" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    entry = json.loads(line)
    if entry["event"] == "summary":
        print(f"  {entry['run']}  {entry['action']:<10} exit {entry['exit_code']}  {entry['items']:>3} items  "
              f"{entry['duration_seconds']:.1f}s  {entry['counts']}")
PY
echo
echo "Demo done. The lab was a fake Exchange in memory; see docs/getting-started.md for real servers."
