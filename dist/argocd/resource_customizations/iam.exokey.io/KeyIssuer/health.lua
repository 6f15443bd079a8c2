-- Health of an exokey KeyIssuer, from the kstatus conditions exokey writes:
-- Healthy once its credentials may mint keys for this generation,
-- Degraded when they are refused or its endpoint is (Stalled), Progressing
-- while it waits for its credentials Secret or for Exoscale to answer.
local hs = {}
if obj.status == nil or obj.status.observedGeneration == nil or obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for exokey to serve generation " .. tostring(obj.metadata.generation)
  return hs
end
local conditions = {}
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    conditions[condition.type] = condition
  end
end
local function say(condition)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.reason .. ": " .. condition.message
  end
  return condition.reason
end
if conditions.Stalled ~= nil and conditions.Stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = say(conditions.Stalled)
  return hs
end
if conditions.Reconciling ~= nil and conditions.Reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = say(conditions.Reconciling)
  return hs
end
if conditions.Ready ~= nil and conditions.Ready.status == "True" then
  hs.status = "Healthy"
  hs.message = say(conditions.Ready)
  return hs
end
hs.status = "Progressing"
hs.message = "Waiting for the issuer to be checked"
return hs
