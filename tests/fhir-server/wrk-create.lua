-- wrk script: POST Patient with a unique identifier each time; counts non-201 answers.
-- usage (wrk is a Debian package): wrk -t1 -c16 -d10s -s wrk-create.lua "${FHIR_BASE}Patient"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
local n = 0
request = function()
  n = n + 1
  local body = '{"resourceType":"Patient","identifier":[{"system":"urn:wrk:' .. tostring(math.random(1e9)) .. '","value":"p' .. n .. '"}],"name":[{"family":"W' .. n .. '"}]}'
  return wrk.format(nil, nil, nil, body)
end
local bad = 0
response = function(status, headers, body) if status ~= 201 then bad = bad + 1 end end
done = function(summary, latency, requests) io.write(string.format("non-201: %d\n", bad)) end
