-- Argo CD health check for modelcycle.io/ModelVersion (its lifecycle phase).
hs = {}
local phase = obj.status ~= nil and obj.status.phase or nil
local message = obj.status ~= nil and obj.status.message or nil
local healthy = { Ready = true, Serving = true, Retired = true }
local degraded = { Failed = true, Rejected = true, RolledBack = true }
if phase == nil then
  hs.status = "Progressing"
  hs.message = "Pending"
elseif healthy[phase] then
  hs.status = "Healthy"
  hs.message = phase
elseif degraded[phase] then
  hs.status = "Degraded"
  hs.message = phase
else
  hs.status = "Progressing"
  hs.message = phase
end
if message ~= nil and message ~= "" then
  hs.message = hs.message .. ": " .. message
end
return hs
