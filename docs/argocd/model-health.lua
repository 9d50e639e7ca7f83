-- Argo CD health check for modelcycle.io/Model (kstatus conditions).
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
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. stalled.message
  return hs
end
-- A rollout waiting for a person (promote annotation) or paused by inconclusive analysis is
-- Suspended, as Argo CD shows a paused Argo Rollout.
local rolling = condition("RollingOut")
local paused = { WaitingForPromotion = true, StalePromotion = true, AnalysisInconclusive = true }
if rolling ~= nil and rolling.status == "True" and paused[rolling.reason] then
  hs.status = "Suspended"
  hs.message = rolling.reason .. ": " .. rolling.message
  return hs
end
local degraded = condition("Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.reason .. ": " .. degraded.message
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
local reconciling = condition("Reconciling")
hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message
elseif ready ~= nil then
  hs.message = ready.message
else
  hs.message = "Waiting for the first version"
end
return hs
