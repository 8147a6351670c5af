{{- define "cortex.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cortex.fullname" -}}
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

{{- define "cortex.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cortex.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cortex.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cortex.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cortex.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cortex.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cortex.secretName" -}}
{{- default (include "cortex.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/* The pod's grace period: the preStop sleep, then Córtex's drain (it exits within
drain_timeout + 2 s, rounded up), then a margin before Kubernetes kills it. */}}
{{- define "cortex.gracePeriod" -}}
{{- add (int .Values.preStopSleepSeconds) (int (ceil .Values.drainTimeout)) 2 (int .Values.graceMarginSeconds) }}
{{- end }}

{{/* One TOML value: scalars and lists of scalars are written as JSON, which TOML reads the
same (strings, numbers, booleans, arrays). Tables are refused: they need a section. */}}
{{- define "cortex.tomlValue" -}}
{{- if kindIs "map" . }}
{{- fail (printf "a TOML value must be a scalar or a list, not a table: %s" (toJson .)) }}
{{- end }}
{{- toJson . }}
{{- end }}

{{/* A bare TOML key: letters, digits, _ and -. */}}
{{- define "cortex.tomlKey" -}}
{{- if not (regexMatch "^[A-Za-z0-9_-]+$" .) }}
{{- fail (printf "%q is not a bare TOML key" .) }}
{{- end }}
{{- . }}
{{- end }}
