{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "maestro-gate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: <release>-<chart> unless the release already contains it. */}}
{{- define "maestro-gate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "maestro-gate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "maestro-gate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "maestro-gate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "maestro-gate.labels" -}}
helm.sh/chart: {{ include "maestro-gate.chart" . }}
{{ include "maestro-gate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: maestro-gate
{{- end }}

{{- define "maestro-gate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "maestro-gate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The label a client pod carries to be let through the NetworkPolicy. */}}
{{- define "maestro-gate.clientLabel" -}}
{{- printf "%s-client" (include "maestro-gate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "maestro-gate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Most pods that can run at once: the HPA maximum, or replicaCount. */}}
{{- define "maestro-gate.maxReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas | int }}{{ else }}{{ .Values.replicaCount | int }}{{ end }}
{{- end }}

{{/* Whether the pod has the shared policy volume filled by the init container. */}}
{{- define "maestro-gate.localBundle" -}}
{{- if or (eq .Values.policies.source "image") (eq .Values.policies.source "configMap") }}true{{ end }}
{{- end }}

{{/* Secrets mounted as files: name -> env var and file name under /etc/maestro-gate/secrets. */}}
{{- define "maestro-gate.secretFiles" -}}
checkpointKey: {env: MAESTRO_GATE_CHECKPOINT_KEY_FILE, file: checkpoint-key.pem}
bundlePublicKey: {env: MAESTRO_GATE_BUNDLE_PUBLIC_KEY_FILE, file: bundle-public-key.pem}
apiKeys: {env: MAESTRO_GATE_API_KEYS_FILE, file: api-keys.json}
jwks: {env: MAESTRO_GATE_JWKS_FILE, file: jwks.json}
{{- end }}

{{/*
Refuse values that cannot work. values.schema.json says the same; these checks also hold when a
user renders with --skip-schema-validation.
*/}}
{{- define "maestro-gate.validate" -}}
{{- $max := include "maestro-gate.maxReplicas" . | int }}
{{- if and (eq .Values.audit.backend "sqlite") (gt $max 1) }}
{{- fail "audit.backend=sqlite supports exactly one replica (one writer per audit file): set audit.backend=postgres to run more replicas or enable autoscaling" }}
{{- end }}
{{- if and (eq .Values.audit.backend "postgres") (not .Values.audit.postgres.existingSecret) }}
{{- fail "audit.backend=postgres needs audit.postgres.existingSecret: a Secret holding the DSN" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- if and (eq .Values.policies.source "bundleService") (ne .Values.engine "opa") }}
{{- fail "policies.source=bundleService needs engine=opa: only the OPA sidecar downloads bundles" }}
{{- end }}
{{- if and (eq .Values.profile "production") (not (or .Values.secrets.apiKeys.existingSecret .Values.secrets.jwks.existingSecret)) }}
{{- fail "profile=production requires caller credentials: set secrets.apiKeys.existingSecret or secrets.jwks.existingSecret" }}
{{- end }}
{{- end }}
