-- Argo CD health check for modelcycle.io/RetrainPolicy (kstatus conditions).
hs = {}
local function condition(type)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then return c end
  end
  return nil
end
if obj.status == nil or obj.status.observedGeneration == nil
    or (obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for modelcycle to observe the latest spec"
  return hs
end
-- Stalled: it names a Model that does not exist or is not trained by modelcycle, or a trigger
-- cannot be read as written.
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. stalled.message
  return hs
end
-- Degraded: drift retrains keep firing without removing the drift.
local degraded = condition("Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.reason .. ": " .. degraded.message
  return hs
end
local ready = condition("Ready")
hs.status = "Healthy"
if ready ~= nil then
  hs.message = ready.message
else
  hs.message = "Watching its triggers"
end
return hs
