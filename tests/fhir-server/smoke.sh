#!/usr/bin/env bash
# Smoke test for the Medplum-backed FHIR test server (server.mjs).
# Starts it on a free 127.0.0.1 port, drives it with curl, checks the answers, stops it.
# Needs: bash, curl, node (JSON is read with node, so jq is not needed).
# Exit status: 0 when every check passed, 1 otherwise. Last line: "smoke: N passed, M failed".
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
T="$(mktemp -d)"
SERVER_PID=""
PASS=0
FAIL=0

cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$T"
}
trap cleanup EXIT

ok()   { PASS=$((PASS + 1)); echo "ok   - $1"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL - $1" >&2; }
# check DESCRIPTION ACTUAL EXPECTED
check() { if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi; }
# check_match DESCRIPTION ACTUAL REGEX
check_match() { if [[ "$2" =~ $3 ]]; then ok "$1"; else bad "$1: '$2' does not match /$3/"; fi; }

# js EXPR FILE: evaluate a JS expression with `d` bound to the JSON in FILE; strings print raw.
js() {
  node -e '
    const fs = require("fs");
    const text = fs.readFileSync(process.argv[2], "utf8");
    const d = text ? JSON.parse(text) : undefined;
    const r = eval(process.argv[1]);
    process.stdout.write(r === undefined ? "" : typeof r === "string" ? r : JSON.stringify(r));
  ' "$1" "$2"
}

# req METHOD URL [BODY] [extra curl args...]  -> sets STATUS; body in $T/b, headers in $T/h
req() {
  local method="$1" url="$2" body="${3:-}"
  shift 3 2>/dev/null || shift $#
  local args=(-sS --max-time 20 -X "$method" -o "$T/b" -D "$T/h" -w '%{http_code}'
    -H 'Accept: application/fhir+json')
  if [[ -n "$body" ]]; then
    args+=(-H 'Content-Type: application/fhir+json' --data-binary "$body")
  fi
  STATUS="$(curl "${args[@]}" "$@" "$url")" || STATUS="curl-error"
}
# hdr NAME: value of a response header from the last req
hdr() { grep -i "^$1:" "$T/h" | head -n1 | cut -d: -f2- | sed -e 's/^ *//' -e 's/\r$//'; }

# ------------------------------------------------------------------ start the server
node "$HERE/server.mjs" --port 0 >"$T/out" 2>"$T/err" &
SERVER_PID=$!
BASE=""
for _ in $(seq 1 240); do   # at most 60 s: loading the R4 definitions takes a few seconds
  if line="$(grep -m1 '^listening ' "$T/out" 2>/dev/null)"; then BASE="${line#listening }"; break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.25
done
if [[ -z "$BASE" ]]; then
  echo "server did not print its listening line; stderr:" >&2
  cat "$T/err" >&2
  echo "smoke: 0 passed, 1 failed"
  exit 1
fi
check "stdout is exactly one listening line" "$(wc -l <"$T/out" | tr -d ' ')" "1"
check_match "listening line format" "$BASE" '^http://127\.0\.0\.1:[0-9]+/fhir/R4/$'
echo "# server at $BASE (pid $SERVER_PID)"

RUN="$$-$RANDOM"           # makes identifiers unique per run
SYS="urn:fhirsurge:smoke"

# ------------------------------------------------------------------ metadata
req GET "${BASE}metadata"
check "metadata status" "$STATUS" "200"
check "metadata is a CapabilityStatement" "$(js 'd.resourceType' "$T/b")" "CapabilityStatement"
check "metadata fhirVersion" "$(js 'd.fhirVersion' "$T/b")" "4.0.1"
check "metadata lists Patient" "$(js 'd.rest[0].resource.some(r => r.type === "Patient")' "$T/b")" "true"

# ------------------------------------------------------------------ create
PAT="{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"$SYS\",\"value\":\"mrn-$RUN\"}],\"name\":[{\"family\":\"Smoke\",\"given\":[\"Test\"]}],\"gender\":\"female\",\"birthDate\":\"1970-01-01\"}"
req POST "${BASE}Patient" "$PAT"
check "create Patient status" "$STATUS" "201"
ID="$(js 'd.id' "$T/b")"
V1="$(js 'd.meta.versionId' "$T/b")"
check_match "create returns an id" "$ID" '^[A-Za-z0-9.-]{1,64}$'
check "create ETag" "$(hdr ETag)" "W/\"$V1\""
check "create Location" "$(hdr Location)" "${BASE}Patient/$ID/_history/$V1"
check_match "create Content-Type" "$(hdr Content-Type)" '^application/fhir\+json'
check_match "create Last-Modified" "$(hdr Last-Modified)" 'GMT$'

# ------------------------------------------------------------------ read
req GET "${BASE}Patient/$ID"
check "read status" "$STATUS" "200"
check "read id" "$(js 'd.id' "$T/b")" "$ID"
check "read ETag" "$(hdr ETag)" "W/\"$V1\""
req GET "${BASE}Patient/does-not-exist-$RUN"
check "read unknown id -> 404" "$STATUS" "404"
check "404 body is an OperationOutcome" "$(js 'd.resourceType' "$T/b")" "OperationOutcome"

# ------------------------------------------------------------------ search by identifier
req GET "${BASE}Patient?identifier=$SYS%7Cmrn-$RUN"
check "search by identifier status" "$STATUS" "200"
check "search by identifier: one entry" "$(js '(d.entry || []).length' "$T/b")" "1"
check "search by identifier: total 1" "$(js 'd.total' "$T/b")" "1"
check "search by identifier: right id" "$(js 'd.entry[0].resource.id' "$T/b")" "$ID"
check "search entry fullUrl" "$(js 'd.entry[0].fullUrl' "$T/b")" "${BASE}Patient/$ID"

# ------------------------------------------------------------------ conditional create
req POST "${BASE}Patient" "$PAT" -H "If-None-Exist: identifier=$SYS|mrn-$RUN"
check "conditional create, existing -> 200" "$STATUS" "200"
check "conditional create returns the existing id" "$(js 'd.id' "$T/b")" "$ID"
check "conditional create: no new version" "$(js 'd.meta.versionId' "$T/b")" "$V1"
req GET "${BASE}Patient?identifier=$SYS%7Cmrn-$RUN"
check "still exactly one after conditional create" "$(js '(d.entry || []).length' "$T/b")" "1"

NEWPAT="${PAT//mrn-$RUN/new-$RUN}"
req POST "${BASE}Patient" "$NEWPAT" -H "If-None-Exist: identifier=$SYS|new-$RUN"
check "conditional create, absent -> 201" "$STATUS" "201"

DUP="${PAT//mrn-$RUN/dup-$RUN}"
req POST "${BASE}Patient" "$DUP"; req POST "${BASE}Patient" "$DUP"
req POST "${BASE}Patient" "$DUP" -H "If-None-Exist: identifier=$SYS|dup-$RUN"
check "conditional create, two matches -> 412" "$STATUS" "412"

# ------------------------------------------------------------------ update with If-Match
UPD="$(js 'JSON.stringify({...d, active: true})' <(curl -sS --max-time 20 "${BASE}Patient/$ID"))"
req PUT "${BASE}Patient/$ID" "$UPD" -H "If-Match: W/\"$V1\""
check "update with current If-Match -> 200" "$STATUS" "200"
V2="$(js 'd.meta.versionId' "$T/b")"
if [[ -n "$V2" && "$V2" != "$V1" ]]; then ok "update made a new version"; else bad "update made a new version ($V1 -> $V2)"; fi
check "update ETag" "$(hdr ETag)" "W/\"$V2\""
check "update Location" "$(hdr Location)" "${BASE}Patient/$ID/_history/$V2"
check "update body has the change" "$(js 'd.active' "$T/b")" "true"

req PUT "${BASE}Patient/$ID" "$UPD" -H "If-Match: W/\"$V1\""
check "update with stale If-Match -> 412" "$STATUS" "412"
req PUT "${BASE}Patient/$ID" "$UPD" -H "If-Match: $V2"
check "update with unquoted If-Match -> 400" "$STATUS" "400"

# ------------------------------------------------------------------ history and vread
req GET "${BASE}Patient/$ID/_history"
check "history status" "$STATUS" "200"
check "history type" "$(js 'd.type' "$T/b")" "history"
check "history lists 2 versions" "$(js '(d.entry || []).length' "$T/b")" "2"
check "history newest first" "$(js 'd.entry.map(e => e.resource.meta.versionId).join(",")' "$T/b")" "$V2,$V1"
req GET "${BASE}Patient/$ID/_history"
check "history order stable on second read" "$(js 'd.entry.map(e => e.resource.meta.versionId).join(",")' "$T/b")" "$V2,$V1"
req GET "${BASE}Patient/$ID/_history/$V1"
check "vread old version status" "$STATUS" "200"
check "vread old version versionId" "$(js 'd.meta.versionId' "$T/b")" "$V1"
check "vread old version has no change" "$(js 'String(d.active)' "$T/b")" "undefined"
check "vread ETag" "$(hdr ETag)" "W/\"$V1\""

# ------------------------------------------------------------------ client ids on create are ignored
req POST "${BASE}Patient" "{\"resourceType\":\"Patient\",\"id\":\"$ID\",\"meta\":{\"versionId\":\"1\"}}"
check "create with a client id -> 201" "$STATUS" "201"
NEWID="$(js 'd.id' "$T/b")"
if [[ -n "$NEWID" && "$NEWID" != "$ID" ]]; then ok "create ignores the client id"; else bad "create ignores the client id (got $NEWID)"; fi
check_match "create ignores the client versionId" "$(js 'd.meta.versionId' "$T/b")" '^.{2,}$'
req GET "${BASE}Patient/$ID"
check "existing resource untouched by that create" "$(js 'd.meta.versionId' "$T/b")" "$V2"

# ------------------------------------------------------------------ concurrent conditional creates
RACE="{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"$SYS\",\"value\":\"race-$RUN\"}]}"
seq 1 16 | xargs -P 16 -I{} curl -sS --max-time 20 -o /dev/null -w '%{http_code}\n' -X POST \
  -H 'Content-Type: application/fhir+json' -H "If-None-Exist: identifier=$SYS|race-$RUN" \
  --data-binary "$RACE" "${BASE}Patient" >"$T/race"
check "16 concurrent conditional creates: one 201" "$(grep -c '^201$' "$T/race")" "1"
check "16 concurrent conditional creates: fifteen 200" "$(grep -c '^200$' "$T/race")" "15"
req GET "${BASE}Patient?identifier=$SYS%7Crace-$RUN"
check "16 concurrent conditional creates: one resource" "$(js 'd.total' "$T/b")" "1"

# ------------------------------------------------------------------ Observation by patient
OBS="{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},\"subject\":{\"reference\":\"Patient/$ID\"},\"valueQuantity\":{\"value\":72,\"unit\":\"/min\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"/min\"}}"
req POST "${BASE}Observation" "$OBS"
check "create Observation status" "$STATUS" "201"
OID="$(js 'd.id' "$T/b")"
req GET "${BASE}Observation?patient=Patient/$ID"
check "Observation?patient= status" "$STATUS" "200"
check "Observation?patient= finds it once" "$(js '(d.entry || []).map(e => e.resource.id).join(",")' "$T/b")" "$OID"
req GET "${BASE}Observation?subject=Patient/$ID&code=http://loinc.org%7C8867-4"
check "Observation?subject=&code= finds it once" "$(js '(d.entry || []).map(e => e.resource.id).join(",")' "$T/b")" "$OID"

# ------------------------------------------------------------------ paging
PSYS="urn:fhirsurge:smoke:paging:$RUN"
CREATED=()
for i in 1 2 3 4 5; do
  req POST "${BASE}Patient" "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"$PSYS\",\"value\":\"p$i\"}]}"
  CREATED+=("$(js 'd.id' "$T/b")")
done
EXPECT="$(printf '%s\n' "${CREATED[@]}" | sort | tr '\n' ',')"
URL="${BASE}Patient?identifier=$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$PSYS|")&_count=2"
SEEN=()
PAGES=0
NEXT_OK=1
for _ in $(seq 1 10); do           # bounded: 5 resources at 2 a page need 3
  req GET "$URL"
  [[ "$STATUS" == "200" ]] || { bad "paging: page $((PAGES + 1)) status $STATUS"; break; }
  PAGES=$((PAGES + 1))
  while IFS= read -r id; do [[ -n "$id" ]] && SEEN+=("$id"); done < <(js '(d.entry || []).map(e => e.resource.id + "\n").join("")' "$T/b")
  URL="$(js '((d.link || []).find(l => l.relation === "next") || {}).url' "$T/b")"
  [[ -z "$URL" ]] && break
  [[ "$URL" == "$BASE"* ]] || NEXT_OK=0
done
check "paging: 3 pages of _count=2" "$PAGES" "3"
check "paging: next links are absolute and point at this server" "$NEXT_OK" "1"
check "paging: 5 resources seen" "${#SEEN[@]}" "5"
check "paging: each exactly once" "$(printf '%s\n' "${SEEN[@]}" | sort | tr '\n' ',')" "$EXPECT"

# ------------------------------------------------------------------ a few more edges
req POST "${BASE}Patient" "{\"resourceType\":\"Patient\"}" -H 'Prefer: return=minimal'
check "Prefer: return=minimal -> 201" "$STATUS" "201"
check "Prefer: return=minimal -> empty body" "$(wc -c <"$T/b" | tr -d ' ')" "0"
check_match "Prefer: return=minimal still has Location" "$(hdr Location)" "^${BASE}Patient/"
req GET "${BASE}Patient?no-such-param=1"
check "unknown search parameter -> 400" "$STATUS" "400"
req POST "${BASE}Patient" "{\"resourceType\":\"Patient\",\"notAField\":1}"
check "invalid resource -> 400" "$STATUS" "400"
req POST "${BASE}Patient" "{not json"
check "malformed JSON -> 400" "$STATUS" "400"
req DELETE "${BASE}Observation/$OID" "" -H 'If-Match: W/"stale"'
check "delete with stale If-Match -> 412" "$STATUS" "412"
req DELETE "${BASE}Observation/$OID"
check "delete -> 200" "$STATUS" "200"
req GET "${BASE}Observation/$OID"
check "read after delete -> 404" "$STATUS" "404"

echo "smoke: $PASS passed, $FAIL failed"
[[ "$FAIL" -eq 0 ]]
