{{/* Names */}}
{{- define "mms-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mms-connector.fullname" -}}
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

{{- define "mms-connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mms-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mms-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mms-connector.labels" -}}
helm.sh/chart: {{ include "mms-connector.chart" . }}
{{ include "mms-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: connector
app.kubernetes.io/part-of: mms-connector
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mms-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mms-connector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mms-connector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The Secret the chart creates from secretEnv. */}}
{{- define "mms-connector.secretName" -}}
{{- printf "%s-env" (include "mms-connector.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mms-connector.pvcName" -}}
{{- .Values.media.volume.persistentVolumeClaim.existingClaim | default (printf "%s-media" (include "mms-connector.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- end }}

{{/*
Container layout, shared with the Dockerfile (tests/helm/test_dockerfile.py checks both agree).
*/}}
{{- define "mms-connector.configDir" -}}/etc/mms-connector{{- end }}
{{- define "mms-connector.configFileName" -}}config.yaml{{- end }}
{{- define "mms-connector.configPath" -}}
{{- printf "%s/%s" (include "mms-connector.configDir" .) (include "mms-connector.configFileName" .) }}
{{- end }}
{{- define "mms-connector.mediaPath" -}}/var/lib/mms-connector/media{{- end }}

{{/* Callback path of one provider: {"name": ..., "settings": ...}. */}}
{{- define "mms-connector.providerPath" -}}
{{- .settings.path | default (printf "/callbacks/%s" .name) }}
{{- end }}

{{/* JSON list of {"name", "path"} for the enabled providers, sorted by name. */}}
{{- define "mms-connector.enabledProviders" -}}
{{- $out := list }}
{{- range $name, $settings := .Values.providers }}
{{- if $settings.enabled }}
{{- $path := include "mms-connector.providerPath" (dict "name" $name "settings" $settings) }}
{{- $out = append $out (dict "name" $name "path" $path) }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
Settings of one config section, one "key: value" line each, skipping nulls and empty strings
(the connector's defaults apply to what is left out). {"settings": map, "indent": n}
Values go through toJson: Helm reads numbers in values as floats, and toYaml would write
10485760 as 1.048576e+07; JSON scalars are YAML scalars.
*/}}
{{- define "mms-connector.settings" -}}
{{- range $key, $value := .settings }}
{{- if not (or (kindIs "invalid" $value) (and (kindIs "string" $value) (eq $value ""))) }}
{{ printf "%s: %s" $key (toJson $value) | indent $.indent }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The connector's config file. Disabled providers are left out (the connector treats a missing
provider as disabled). Credentials are never here: the pod gets them as environment variables.
*/}}
{{- define "mms-connector.configFile" -}}
# Rendered by the mms-connector Helm chart from its values; do not edit in the cluster.
# Check a copy with: mms-connector check-config FILE
kafka:
  {{- include "mms-connector.settings" (dict "settings" (omit .Values.kafka "producer") "indent" 2) }}
  producer: {{ .Values.kafka.producer | default dict | toJson }}
schema_registry:
  {{- include "mms-connector.settings" (dict "settings" .Values.schema_registry "indent" 2) }}
server:
  host: "0.0.0.0"
  port: {{ .Values.containerPort | int }}
  {{- include "mms-connector.settings" (dict "settings" .Values.server "indent" 2) }}
media:
  root: {{ include "mms-connector.mediaPath" . | toJson }}
{{- with .Values.dead_letters }}
dead_letters:
  {{- include "mms-connector.settings" (dict "settings" . "indent" 2) }}
{{- end }}
{{- with .Values.dedupe }}
dedupe:
  {{- include "mms-connector.settings" (dict "settings" . "indent" 2) }}
{{- end }}
{{- $enabled := include "mms-connector.enabledProviders" . | fromJsonArray }}
providers:{{ if not $enabled }} {}{{ end }}
{{- range $name, $settings := .Values.providers }}
{{- if $settings.enabled }}
  {{ $name | toJson }}:
  {{- include "mms-connector.settings" (dict "settings" $settings "indent" 4) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Refuse combinations the schema cannot express. Called from the Deployment.
*/}}
{{- define "mms-connector.validate" -}}
{{- if and .Values.existingSecret .Values.secretEnv }}
{{- fail "set either existingSecret (a Secret you manage) or secretEnv (the chart creates the Secret), not both" }}
{{- end }}
{{- $deadline := 0.0 }}
{{- range $name, $settings := .Values.providers }}
{{- if $settings.enabled }}
{{- $deadline = maxf $deadline ($settings.deadline_seconds | default 8.0) }}
{{- end }}
{{- end }}
{{- $flush := .Values.kafka.flush_timeout_seconds | default 30.0 }}
{{- $needed := addf .Values.shutdown.preStopSleepSeconds $deadline $flush }}
{{- if lt (float64 .Values.shutdown.terminationGracePeriodSeconds) (float64 $needed) }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%v) must be at least preStopSleepSeconds + the largest provider deadline_seconds + kafka.flush_timeout_seconds (%v), or in-flight callbacks and the final Kafka flush are cut off" .Values.shutdown.terminationGracePeriodSeconds $needed) }}
{{- end }}
{{- if and (eq .Values.media.volume.type "persistentVolumeClaim") (not .Values.media.volume.persistentVolumeClaim.existingClaim) (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) (not (has "ReadWriteMany" .Values.media.volume.persistentVolumeClaim.accessModes)) }}
{{- fail "media.volume: a chart-created PersistentVolumeClaim shared by more than one pod needs accessModes [ReadWriteMany]" }}
{{- end }}
{{- if and .Values.ingress.enabled (eq (include "mms-connector.enabledProviders" . | fromJsonArray | len) 0) }}
{{- fail "ingress.enabled but no provider is enabled: the Ingress would have no callback path" }}
{{- end }}
{{- end }}
