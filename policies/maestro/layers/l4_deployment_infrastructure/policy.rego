# L4 Deployment Infrastructure: sandboxes for code execution, the secrets an agent's
# workload may read, egress allowlists, and where (local or cloud) sensitive data may be handled.
package maestro.layers.l4_deployment_infrastructure

import rego.v1

import data.maestro.lib

layer := "l4_deployment_infrastructure"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats, "message": message}

# rego-cpp cost notes (regopy 1.5.2): every built-in call copies the VM state, and an object used
# as a condition is serialised. So input and registry fields are read by path (with `default` or
# `else` instead of object.get), membership is tested by scanning, and each rule body starts with
# its cheapest guard so that requests where nothing fires stay off the built-ins.

# Both tests read the tool's memoised registry entry (lib.tool_risk would look it up a second
# time; a tool the registry lacks is not code_exec either way).
default needs_sandbox := false

needs_sandbox if lib.tool.risk_class == "code_exec"

needs_sandbox if lib.tool.sandbox_required == true

# METADATA
# title: Code execution outside a sandbox
# description: A code-execution tool, or a tool the registry marks sandbox_required, runs unsandboxed.
# custom:
#   rule: L4.code_exec_outside_sandbox
#   layer: l4_deployment_infrastructure
#   threats: [T11]
#   mitigations: [sandboxing]
deny contains reason("L4.code_exec_outside_sandbox", ["T11"], msg) if {
	needs_sandbox
	not input.execution.sandbox == true
	msg := sprintf("agent %s runs %s outside a sandbox", [input.subject.id, input.action])
}

# The agent's secret scope, [] when its entry lists none; undefined for an unregistered subject.
secret_scope := scope if {
	scope := lib.agent.secrets
} else := [] if lib.registered

# The requested secrets that the scope names exactly (a scan: no built-in calls) ...
named_secrets contains secret if {
	some secret in input.execution.secrets
	some entry in secret_scope
	entry == secret
}

# ... and a scope entry ending in `/*` grants every secret under that prefix.
prefix_scoped(secret) if {
	some entry in secret_scope
	endswith(entry, "/*")
	startswith(secret, trim_suffix(entry, "*"))
}

# METADATA
# title: Secret outside the agent's scope
# description: The action reads a secret that the agent's workload identity is not scoped to.
# custom:
#   rule: L4.secret_out_of_scope
#   layer: l4_deployment_infrastructure
#   threats: [T3, T22, T34]
#   mitigations: [nhi_lifecycle, time_bounded_privilege]
deny contains reason("L4.secret_out_of_scope", ["T3", "T22", "T34"], msg) if {
	some secret in input.execution.secrets
	not named_secrets[secret]
	not prefix_scoped(secret)
	msg := sprintf("agent %s reads secret %s outside its scope %v", [input.subject.id, secret, secret_scope])
}

# The agent's egress allowlist, [] when its entry lists none; undefined for an unregistered subject.
agent_egress := egress if {
	egress := lib.agent.egress
} else := [] if lib.registered

# The declared egress hosts, and the external destination, that are on the agent's allowlist.
egress_listed contains host if {
	some host in input.execution.egress
	some listed in agent_egress
	listed == host
}

egress_listed contains input.destination.id if {
	lib.is_movement
	some listed in agent_egress
	listed == input.destination.id
}

# METADATA
# title: Egress to an unlisted destination
# description: >-
#   The action reaches a host outside the agent's egress allowlist, or data goes to an external
#   destination that the registry's destination allowlist or the agent's egress list lacks.
# custom:
#   rule: L4.egress_not_allowlisted
#   layer: l4_deployment_infrastructure
#   threats: [T11, T28]
#   mitigations: [output_egress_dlp, policy_bound_autonomy]
deny contains reason("L4.egress_not_allowlisted", ["T11", "T28"], msg) if {
	some host in input.execution.egress
	not egress_listed[host]
	msg := sprintf("agent %s reaches %s, which is not on its egress allowlist %v", [input.subject.id, host, agent_egress])
}

deny contains reason("L4.egress_not_allowlisted", ["T11", "T28"], msg) if {
	lib.is_movement
	input.destination.type == "external"
	not lib.destinations[input.destination.id]
	msg := sprintf("external destination %s is not on the registry's destination allowlist", [input.destination.id])
}

deny contains reason("L4.egress_not_allowlisted", ["T11", "T28"], msg) if {
	lib.is_movement
	input.destination.type == "external"
	lib.destinations[input.destination.id]
	not egress_listed[input.destination.id]
	# agent_egress is undefined for an unregistered subject, which gets no reason here
	msg := sprintf("agent %s may not send data to %s (egress allowlist %v)", [input.subject.id, input.destination.id, agent_egress])
}

# Where the work runs: the request's declared location, else the agent's registered one.
location := where if {
	where := input.execution.location
} else := where if {
	where := lib.agent.location
} else := "unknown"

# An agent_action's target is at or above the local-only classification: the same test as
# `lib.max_target_rank >= lib.local_only_rank`, without ranking a target that has no label.
default target_local_only := false

target_local_only if {
	some c in lib.target_classifications
	lib.rank(c) >= lib.local_only_rank
}

# METADATA
# title: Sensitive data handled off local compute
# description: >-
#   Data at or above the local-only classification is handled by a workload running in the
#   cloud, or handed to an agent registered to run in the cloud.
# custom:
#   rule: L4.sensitive_data_off_local
#   layer: l4_deployment_infrastructure
#   threats: [T46, T3]
#   mitigations: [classification_aware_placement, data_classification]
deny contains reason("L4.sensitive_data_off_local", ["T46", "T3"], msg) if {
	lib.is_action
	location != "local"
	target_local_only
	msg := sprintf("agent %s handles %v data on %s compute; that classification stays on local compute", [input.subject.id, sort([c | some c in lib.target_classifications]), location])
}

deny contains reason("L4.sensitive_data_off_local", ["T46", "T3"], msg) if {
	lib.is_movement
	lib.rank(input.data.classification) >= lib.local_only_rank
	some who in handlers
	where := handler_location[who]
	where != "local"
	msg := sprintf("%s data reaches agent %s, which runs on %s compute; that classification stays local", [input.data.classification, who, where])
}

handlers contains input.subject.id if lib.is_movement

handlers contains input.destination.id if input.destination.type == "agent"

# Each handler's registered location, "unknown" when it has none (object.get on lib.agents would
# copy the whole agents section).
handler_location[who] := lib.agents[who].location if {
	some who in handlers
}

handler_location[who] := "unknown" if {
	some who in handlers
	not lib.agents[who].location
	not lib.agents[who].location == false
}

# METADATA
# title: Workload runs somewhere other than its registered location
# description: The request declares an execution location that differs from the agent's registered one.
# custom:
#   rule: L4.location_mismatch
#   layer: l4_deployment_infrastructure
#   threats: [T13, T9]
#   mitigations: [workload_identity]
deny contains reason("L4.location_mismatch", ["T13", "T9"], msg) if {
	declared := input.execution.location
	registered := lib.agent.location
	declared != registered
	msg := sprintf("agent %s is registered to run on %s compute but reports %s", [input.subject.id, registered, declared])
}

# METADATA
# title: Run the tool in a sandbox
# custom:
#   rule: L4.sandbox
#   layer: l4_deployment_infrastructure
#   threats: [T11]
#   mitigations: [sandboxing]
# (The reason is written out in full rather than through object.union: this fires on allowed requests.)
obligations contains {
	"rule": "L4.sandbox", "layer": layer, "threats": ["T11"], "message": msg,
	"type": "sandbox", "params": {"profile": sandbox_profile},
} if {
	needs_sandbox
	msg := sprintf("run %s inside a %s sandbox", [input.action, sandbox_profile])
}

# The tool's registered sandbox profile (object.get on lib.tools would copy the whole section).
sandbox_profile := profile if {
	profile := lib.tools[input.action].sandbox_profile
} else := "gvisor"

hitl := set()
