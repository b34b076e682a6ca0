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
# time). A tool needs a sandbox unless the registry says `sandbox_required: false` and it is
# not code_exec: an entry without the flag, or a tool the registry lacks, fails closed.
default needs_sandbox := false

needs_sandbox if lib.tool.risk_class == "code_exec"

needs_sandbox if {
	lib.is_action
	not lib.tool.sandbox_required == false
}

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

# The secrets a call reads are the caller's `execution.secrets`, which the gate cannot verify,
# so they are asked for only where they matter and required there: of a tool that reads
# secrets, which is every tool but one the registry marks `reads_secrets: false` (an unknown
# tool, or one whose entry says nothing, does). Other tools' declared secrets are not read.
declared_secrets contains secret if {
	lib.secret_tool
	some secret in input.execution.secrets
}

# The declared secrets that the scope names exactly (a scan: no built-in calls) ...
named_secrets contains secret if {
	some secret in declared_secrets
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
	some secret in declared_secrets
	not named_secrets[secret]
	not prefix_scoped(secret)
	msg := sprintf("agent %s reads secret %s outside its scope %v", [input.subject.id, secret, secret_scope])
}

# METADATA
# title: Secrets of a secret-reading tool undeclared
# description: >-
#   A tool that reads secrets (any tool the registry does not mark `reads_secrets: false`) is
#   called without `execution.secrets`, so the gate cannot check them against the agent's scope.
# custom:
#   rule: L4.secrets_undeclared
#   layer: l4_deployment_infrastructure
#   threats: [T3, T22, T34]
#   mitigations: [nhi_lifecycle, time_bounded_privilege]
deny contains reason("L4.secrets_undeclared", ["T3", "T22", "T34"], msg) if {
	lib.secret_tool
	not secrets_declared
	msg := sprintf("agent %s calls %s, which reads secrets, without declaring them in execution.secrets", [input.subject.id, input.action])
}

# (A rule, not `not is_array(...)` in the body: on OPA a negated call over an undefined
# reference is itself undefined.)
default secrets_declared := false

secrets_declared if is_array(input.execution.secrets)

# The agent's egress allowlist, [] when its entry lists none; undefined for an unregistered subject.
agent_egress := egress if {
	egress := lib.agent.egress
} else := [] if lib.registered

# The hosts an action reaches, as the gate derives them (whatever `execution` says): an
# external target, the tool's fixed `hosts`, and the host of every argument the tool registry
# declares as a URL (`url_args`) or a host name (`host_args`). Hosts compare in lower case.
# (Few rules, and parsing in functions of bound values: under `with`, rego-cpp copies every
# rule that depends on the input, and each rule more here cost the test runner gigabytes.)
derived_hosts contains h if {
	lib.is_action
	input.target.type == "external"
	h := host_key(input.target.id)
}

derived_hosts contains h if {
	some listed in lib.tool.hosts
	h := host_key(listed)
}

derived_hosts contains h if {
	some name in lib.tool.url_args
	h := url_host(input.arguments[name])
}

derived_hosts contains h if {
	some name in lib.tool.host_args
	h := host_name(input.arguments[name])
}

# The authority of an absolute URL, flat (no recursion, one regex on either engine): a scheme,
# `://`, optional user info without `/ ? # \ @`, then the host (letters, digits, dots, hyphens),
# an optional port, and the end or `/ ? #`. Anything else (two `@`, a backslash, an IP literal,
# percent-encoding or spaces in the host, no scheme) does not match, and no host is derived.
url_authority := `^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#\\@]*@)?([A-Za-z0-9.-]+)(?::[0-9]*)?(?:[/?#]|$)`

url_host(value) := host_key(m[0][1]) if {
	is_string(value)
	m := regex.find_all_string_submatch_n(url_authority, value, 1)
}

# A host name argument: letters, digits, dots and hyphens only (anything else derives no host).
host_name(value) := host_key(value) if {
	is_string(value)
	regex.match(`^[A-Za-z0-9.-]+$`, value)
}

# Hosts compare in lower case. trim_space changes no host these rules derive; it is there for
# rego-cpp, whose sprintf quotes a string that lower() or regex built when it formats more than
# one value (the message then is not valid JSON), but not one trim_space built.
host_key(s) := trim_space(lower(s))

# A declared URL or host argument present in the call whose host cannot be derived.
default underivable_arg := false

underivable_arg if {
	some name in lib.tool.url_args
	value := input.arguments[name]
	not url_host(value)
}

underivable_arg if {
	some name in lib.tool.host_args
	value := input.arguments[name]
	not host_name(value)
}

# The derived hosts, and the external destination, on the agent's allowlist. A caller's
# `execution.egress` is not consulted: the gate cannot verify it, and a check that only a
# declaration triggers is one that leaving the declaration out escapes.
egress_listed contains host if {
	some host in derived_hosts
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
	some host in derived_hosts
	not egress_listed[host]
	msg := sprintf("agent %s reaches %s, which is not on its egress allowlist %v", [input.subject.id, host, agent_egress])
}

# METADATA
# title: Network destination cannot be derived
# description: >-
#   A tool that reaches the network (any tool the registry does not mark `network: false`) is
#   called without a destination the gate can derive (an external target, the tool's `hosts`,
#   or a host in an argument the registry declares as a URL or host), or with such an argument
#   whose host cannot be read.
# custom:
#   rule: L4.egress_destination_unknown
#   layer: l4_deployment_infrastructure
#   threats: [T11, T28]
#   mitigations: [output_egress_dlp, policy_bound_autonomy]
deny contains reason("L4.egress_destination_unknown", ["T11", "T28"], msg) if {
	lib.network_tool
	not derived_destination
	msg := sprintf("agent %s calls network tool %s, but no destination can be derived from its target or arguments", [input.subject.id, input.action])
}

deny contains reason("L4.egress_destination_unknown", ["T11", "T28"], msg) if {
	lib.network_tool
	underivable_arg
	msg := sprintf("agent %s calls network tool %s with a URL or host argument whose host cannot be derived", [input.subject.id, input.action])
}

default derived_destination := false

derived_destination if some _ in derived_hosts

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

# Where the work runs: off local compute when the agent's registered location is not local (or
# it has none), or when the request itself declares a location that is not local. A declared
# location can only make this stricter; one that differs from the registry's is also
# L4.location_mismatch.
location := where if {
	where := input.execution.location
	not where == "local"
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

# --- on-chain events -------------------------------------------------------------------

# The confirmations the registry requires on the chain of the event an action responds to
# (`input.trigger`); undefined for a chain the registry lacks or gives no `confirmations`, and
# then acting on its events is denied. The count is the runtime's: the gate has no chain node.
confirmations_needed := n if {
	n := lib.chains[input.trigger.chain].confirmations
	is_number(n)
}

default finality_known := false

finality_known if _ := confirmations_needed

# METADATA
# title: Acting on an on-chain event before the chain's confirmations
# description: >-
#   The action responds to an on-chain event with fewer confirmations than the registry sets
#   for that chain, or to an event on a chain for which it sets none: a reorganisation could
#   reverse what the agent treats as final.
# custom:
#   rule: L4.chain_event_unconfirmed
#   layer: l4_deployment_infrastructure
#   threats: [T33]
deny contains reason("L4.chain_event_unconfirmed", ["T33"], msg) if {
	seen := input.trigger.confirmations
	lib.is_action
	seen < confirmations_needed
	msg := sprintf("agent %s acts on an event on %s with %v confirmations; the registry requires %v", [input.subject.id, input.trigger.chain, seen, confirmations_needed])
}

deny contains reason("L4.chain_event_unconfirmed", ["T33"], msg) if {
	chain := input.trigger.chain
	lib.is_action
	not finality_known
	msg := sprintf("agent %s acts on an event on %s, for which the registry sets no confirmation depth", [input.subject.id, chain])
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

# --- MCP servers ------------------------------------------------------------------------

# The MCP server the registry says the called tool runs on (the caller's `tool.server` is
# checked against it by L7.tool_description_mismatch); undefined for a tool without one.
mcp_server := lib.tools[input.action].server if lib.is_action

default on_mcp_server := false

on_mcp_server if _ := mcp_server

# The registry's `servers` entry for that server, {} when it has none: every check below then
# fails closed (no exposure, no tenants, no permissions declared).
default server_entry := {}

server_entry := data.maestro.registry.servers[mcp_server]

default server_exposure := "undeclared"

server_exposure := server_entry.exposure

default exposure_contained := false

exposure_contained if server_exposure == "local"

exposure_contained if server_exposure == "authenticated"

# METADATA
# title: MCP server exposed to the network
# description: The called tool runs on an MCP server the registry does not declare local (loopback or a private socket) or authenticated (every client presents a credential).
# custom:
#   rule: L4.mcp_server_exposed
#   layer: l4_deployment_infrastructure
#   threats: [T43]
#   mitigations: [least_privilege_tool_scoping]
deny contains reason("L4.mcp_server_exposed", ["T43"], msg) if {
	on_mcp_server
	not exposure_contained
	msg := sprintf("tool %s runs on MCP server %s, which the registry does not declare local or authenticated (exposure: %s)", [input.action, mcp_server, server_exposure])
}

default server_tenants := []

server_tenants := server_entry.tenants

# The server serves the subject's tenant: the registry lists the agent's tenant for it, or the
# server is shared (`*`) and isolates its clients from one another (`client_isolation: true`).
# An agent without a tenant, or a server without tenants, matches nothing.
default server_serves_tenant := false

server_serves_tenant if {
	tenant := lib.entry.tenant
	some listed in server_tenants
	listed == tenant
}

server_serves_tenant if {
	some listed in server_tenants
	listed == "*"
	server_entry.client_isolation == true
}

# METADATA
# title: MCP server not scoped to the agent's tenant
# description: The agent calls a tool on an MCP server the registry does not scope to its tenant, or on a shared server that does not isolate its clients.
# custom:
#   rule: L4.mcp_server_tenant_mismatch
#   layer: l4_deployment_infrastructure
#   threats: [T42]
#   mitigations: [context_isolation]
deny contains reason("L4.mcp_server_tenant_mismatch", ["T42"], msg) if {
	on_mcp_server
	lib.registered
	not server_serves_tenant
	msg := sprintf("agent %s may not use MCP server %s: the registry neither scopes it to the agent's tenant nor marks it a shared server with client_isolation", [input.subject.id, mcp_server])
}

default server_permissions_declared := false

server_permissions_declared if _ := server_entry.permissions

agent_scopes contains scope if {
	some scope in lib.entry.scopes
}

# The permissions the server holds that the calling agent's own scopes lack: through the
# server the agent would act with authority it was never granted.
excess_permissions contains permission if {
	some permission in server_entry.permissions
	not agent_scopes[permission]
}

# METADATA
# title: MCP server holds more than the agent may
# description: The MCP server behind the tool declares no permissions, or holds a permission outside the calling agent's scopes.
# custom:
#   rule: L4.mcp_server_over_privileged
#   layer: l4_deployment_infrastructure
#   threats: [T45]
#   mitigations: [least_privilege_tool_scoping]
deny contains reason("L4.mcp_server_over_privileged", ["T45"], msg) if {
	on_mcp_server
	lib.registered
	not server_permissions_declared
	msg := sprintf("MCP server %s behind tool %s declares no permissions in the registry", [mcp_server, input.action])
}

deny contains reason("L4.mcp_server_over_privileged", ["T45"], msg) if {
	on_mcp_server
	lib.registered
	some permission in excess_permissions
	msg := sprintf("MCP server %s holds permission %s, which agent %s's scopes lack", [mcp_server, permission, input.subject.id])
}
