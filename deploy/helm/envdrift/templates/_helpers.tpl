{{- define "envdrift.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "envdrift.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "envdrift.selectorLabels" -}}
app.kubernetes.io/name: {{ include "envdrift.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "envdrift.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "envdrift.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: daemon
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "envdrift.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "envdrift.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "envdrift.tokenSecret" -}}
{{- default (printf "%s-api-tokens" (include "envdrift.fullname" .)) .Values.api.tokens.existingSecret -}}
{{- end -}}

{{/* The config file: the user's config plus what the chart owns. */}}
{{- define "envdrift.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg "data_dir" "/var/lib/envdrift" -}}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.api.port)) -}}
{{- $api := dict "metrics_public" .Values.api.metricsPublic "tokens" (list (dict "name" "read" "role" "read" "token_file" "/var/run/secrets/envdrift/api/read-token") (dict "name" "operate" "role" "operate" "token_file" "/var/run/secrets/envdrift/api/operate-token")) -}}
{{- $_ := set $cfg "api" $api -}}
{{- if eq .Values.store.type "postgres" -}}
{{- $_ := set $cfg "store" (dict "type" "postgres" "url_env" "ENVDRIFT_DATABASE_URL") -}}
{{- end -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- $coord := dict "type" "kubernetes" "in_cluster" true "namespace" .Release.Namespace "lease_duration" .Values.coordination.leaseDuration -}}
{{- $_ := set $cfg "daemon" (dict "coordination" $coord) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
