-- Argo CD health of a gpupool.io InferencePool, from the Ready condition the operator writes
-- (operator/gpupool/services/pool.py).
--   Healthy:     Ready=True (NodesFound: schedulable nodes carry the pool's labels).
--   Degraded:    Ready=False (NoNodesMatch: no node carries them).
--   Progressing: not reconciled yet, or a spec change not yet observed.
local hs = {status = "Progressing", message = "Waiting for gpupool to reconcile the pool"}

local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.message = "Waiting for gpupool to observe generation " .. generation
  return hs
end
for _, c in ipairs(status.conditions) do
  if c.type == "Ready" then
    local message = c.reason
    if c.message ~= nil and c.message ~= "" then
      message = c.reason .. ": " .. c.message
    end
    if c.status == "True" then
      hs.status = "Healthy"
    elseif c.status == "False" then
      hs.status = "Degraded"
    end
    hs.message = message
    return hs
  end
end
return hs
