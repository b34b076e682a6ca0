# L4 Deployment Infrastructure: sandboxes for code execution, the secrets an agent's
# workload may read, egress allowlists, and where (local or cloud) sensitive data may be handled.
package maestro.layers.l4_deployment_infrastructure

import rego.v1

import data.maestro.lib

layer := "l4_deployment_infrastructure"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats, "message": message}

execution := object.get(input, "execution", {})

needs_sandbox if lib.tool_risk == "code_exec"

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
	not execution.sandbox == true
	msg := sprintf("agent %s runs %s outside a sandbox", [input.subject.id, input.action])
}

secret_scope := object.get(lib.agent, "secrets", [])

# A scope entry ending in `/*` grants every secret under that prefix.
in_scope(secret) if secret in secret_scope

in_scope(secret) if {
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
	some secret in object.get(execution, "secrets", [])
	not in_scope(secret)
	msg := sprintf("agent %s reads secret %s outside its scope %v", [input.subject.id, secret, secret_scope])
}

agent_egress := object.get(lib.agent, "egress", [])

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
	some host in object.get(execution, "egress", [])
	not host in agent_egress
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
	lib.agent
	not input.destination.id in agent_egress
	msg := sprintf("agent %s may not send data to %s (egress allowlist %v)", [input.subject.id, input.destination.id, agent_egress])
}

# Where the work runs: the request's declared location, else the agent's registered one.
location := object.get(execution, "location", object.get(lib.entry, "location", "unknown"))

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
	lib.max_target_rank >= lib.local_only_rank
	location != "local"
	msg := sprintf("agent %s handles %v data on %s compute; that classification stays on local compute", [input.subject.id, sort([c | some c in lib.target_classifications]), location])
}

deny contains reason("L4.sensitive_data_off_local", ["T46", "T3"], msg) if {
	lib.is_movement
	lib.rank(input.data.classification) >= lib.local_only_rank
	some who in handlers
	where := object.get(lib.agents, [who, "location"], "unknown")
	where != "local"
	msg := sprintf("%s data reaches agent %s, which runs on %s compute; that classification stays local", [input.data.classification, who, where])
}

handlers contains input.subject.id if lib.is_movement

handlers contains input.destination.id if input.destination.type == "agent"

# METADATA
# title: Workload runs somewhere other than its registered location
# description: The request declares an execution location that differs from the agent's registered one.
# custom:
#   rule: L4.location_mismatch
#   layer: l4_deployment_infrastructure
#   threats: [T13, T9]
#   mitigations: [workload_identity]
deny contains reason("L4.location_mismatch", ["T13", "T9"], msg) if {
	declared := execution.location
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
obligations contains object.union(reason("L4.sandbox", ["T11"], msg), {"type": "sandbox", "params": {"profile": profile}}) if {
	needs_sandbox
	profile := object.get(lib.tools, [input.action, "sandbox_profile"], "gvisor")
	msg := sprintf("run %s inside a %s sandbox", [input.action, profile])
}

hitl := set()
