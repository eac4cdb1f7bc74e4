-- Argo CD health of a gpupool.io ModelDeployment, from the conditions the operator writes
-- (operator/gpupool/api/conditions.py, services/modeldeployment.py).
--   Degraded:    Degraded=True (the spec cannot be served: DoesNotFit, PoolNotFound, UnknownModel,
--                InvalidSpec, ...; a canary rolled back: RolledBack), or Ready=False for any reason
--                but InstancesStarting.
--   Progressing: not reconciled yet, a spec change not yet observed, instances starting, rolling
--                out or a canary step under way (Progressing=True: RollingOut, CanaryStep).
--   Healthy:     Ready=True with reason Available or ScaledToZero, and nothing progressing.
-- Argo CD runs a script from argocd-cm without Lua's string and math libraries: plain operators only.
local hs = {status = "Progressing", message = "Waiting for gpupool to reconcile the model"}

local function condition(status, type_)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.message = "Waiting for gpupool to observe generation " .. generation
  return hs
end

local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded)
  return hs
end

local ready = condition(status, "Ready")
local progressing = condition(status, "Progressing")
if ready ~= nil and ready.status == "True" and (ready.reason == "Available" or ready.reason == "ScaledToZero") then
  if progressing == nil or progressing.status ~= "True" then
    hs.status = "Healthy"
    hs.message = ready.message ~= "" and ready.message or ready.reason
    return hs
  end
end
if ready ~= nil and ready.status == "False" and ready.reason ~= "InstancesStarting" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end
if progressing ~= nil and progressing.status == "True" then
  hs.message = describe(progressing)
  return hs
end
if ready ~= nil then
  hs.message = describe(ready)
end
return hs
