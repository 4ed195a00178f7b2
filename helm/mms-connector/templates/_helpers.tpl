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

{{/* The `helm test` pod: its own component, so no Service, PDB or HPA selects it. */}}
{{- define "mms-connector.testLabels" -}}
helm.sh/chart: {{ include "mms-connector.chart" . }}
app.kubernetes.io/name: {{ printf "%s-test" (include "mms-connector.name" . | trunc 58 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
app.kubernetes.io/part-of: mms-connector
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The mirror (`mms-connector mirror`): its own name and selector, so the receiver's Service, PDB
and HPA never count its pods. Its app.kubernetes.io/name differs (<name>-mirror) rather than
adding a component to the selectors: a Deployment's selector is immutable, and the receiver's
must stay as it was for `helm upgrade` from earlier charts to work.
*/}}
{{- define "mms-connector.mirrorFullname" -}}
{{- printf "%s-mirror" (include "mms-connector.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}

{{- define "mms-connector.mirrorSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-mirror" (include "mms-connector.name" . | trunc 56 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mms-connector.mirrorLabels" -}}
helm.sh/chart: {{ include "mms-connector.chart" . }}
{{ include "mms-connector.mirrorSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: mirror
app.kubernetes.io/part-of: mms-connector
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Chart-only mirror values (the Deployment's), not the connector's `mirror` settings. */}}
{{- define "mms-connector.mirrorChartKeys" -}}
{{- toJson (list "enabled" "replicaCount" "port" "resources" "probes" "autoscaling" "podDisruptionBudget" "terminationGracePeriodSeconds") }}
{{- end }}

{{/*
Whether the mirror runs: enabled, and something to read (its source_topics, else the enabled
providers' topics, as the connector defaults them).
*/}}
{{- define "mms-connector.mirrorRuns" -}}
{{- if and .Values.mirror.enabled (or .Values.mirror.source_topics (include "mms-connector.enabledProviders" . | fromJsonArray)) }}true{{ end }}
{{- end }}

{{/* Pods that may run at once against the media store: receivers, plus mirrors. */}}
{{- define "mms-connector.manyPods" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) (include "mms-connector.mirrorRuns" .) }}true{{ end }}
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

{{/*
JSON list of {"name", "path", "tokenInPath"} for the enabled providers, sorted by name.
tokenInPath: the connector's route is <path>/{token} (auth.token.in_path).
*/}}
{{- define "mms-connector.enabledProviders" -}}
{{- $out := list }}
{{- range $name, $settings := .Values.providers }}
{{- if $settings.enabled }}
{{- $path := include "mms-connector.providerPath" (dict "name" $name "settings" $settings) }}
{{- $token := (($settings.auth | default dict).token | default dict) }}
{{- $out = append $out (dict "name" $name "path" $path "tokenInPath" (eq (toString $token.in_path) "true")) }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
A provider's auth settings as the connector reads them: unset and empty parts left out, a
token either by header or in the path, a signature's url and max_age_seconds only when set.
Secrets stay references ({env} / {file}).
*/}}
{{- define "mms-connector.auth" -}}
{{- $out := dict }}
{{- with .basic }}
{{- $_ := set $out "basic" (dict "username" .username "password" .password) }}
{{- end }}
{{- with .token }}
{{- $token := dict "value" .value }}
{{- if .in_path }}
{{- $_ := set $token "in_path" true }}
{{- else }}
{{- $_ := set $token "header" .header }}
{{- end }}
{{- $_ := set $out "token" $token }}
{{- end }}
{{- with .signature }}
{{- $signature := dict "keys" .keys }}
{{- with .url }}{{ $_ := set $signature "url" . }}{{ end }}
{{- if not (kindIs "invalid" .max_age_seconds) }}{{ $_ := set $signature "max_age_seconds" .max_age_seconds }}{{ end }}
{{- $_ := set $out "signature" $signature }}
{{- end }}
{{- with .allow_cidrs }}{{ $_ := set $out "allow_cidrs" . }}{{ end }}
{{- with .trusted_proxies }}{{ $_ := set $out "trusted_proxies" . }}{{ end }}
{{- if .unauthenticated }}{{ $_ := set $out "unauthenticated" true }}{{ end }}
{{- toJson $out }}
{{- end }}

{{/*
JSON list of {"key", "env" | "file"}: every secret reference in the rendered config file
(kafka.secrets, schema_registry.password, the S3 store's keys, the enabled providers' auth
secrets, signature keys included, and media_fetch passwords and authorization values).
*/}}
{{- define "mms-connector.secretRefs" -}}
{{- $refs := list }}
{{- range $key, $ref := .Values.kafka.secrets }}
{{- $refs = append $refs (merge (dict "key" (printf "kafka.secrets.%s" $key)) $ref) }}
{{- end }}
{{- with .Values.schema_registry.password }}
{{- $refs = append $refs (merge (dict "key" "schema_registry.password") .) }}
{{- end }}
{{- with (.Values.dedupe.shared | default dict).password }}
{{- $refs = append $refs (merge (dict "key" "dedupe.shared.password") .) }}
{{- end }}
{{- if eq .Values.media.store "s3" }}
{{- range $key := list "access_key_id" "secret_access_key" }}
{{- with index $.Values.media.s3 $key }}
{{- $refs = append $refs (merge (dict "key" (printf "media.s3.%s" $key)) .) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $settings := .Values.providers }}
{{- if $settings.enabled }}
{{- range $key := list "password" "authorization" }}
{{- with index ($settings.media_fetch | default dict) $key }}
{{- $refs = append $refs (merge (dict "key" (printf "providers.%s.media_fetch.%s" $name $key)) .) }}
{{- end }}
{{- end }}
{{- $auth := include "mms-connector.auth" ($settings.auth | default dict) | fromJson }}
{{- with $auth.basic }}
{{- $refs = append $refs (merge (dict "key" (printf "providers.%s.auth.basic.password" $name)) .password) }}
{{- end }}
{{- with $auth.token }}
{{- $refs = append $refs (merge (dict "key" (printf "providers.%s.auth.token.value" $name)) .value) }}
{{- end }}
{{- with $auth.signature }}
{{- range $i, $ref := .keys }}
{{- $refs = append $refs (merge (dict "key" (printf "providers.%s.auth.signature.keys.%d" $name $i)) $ref) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $refs }}
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
provider as disabled). Credentials are never here, only references to them ({env: VAR} or
{file: PATH}): the pod gets them as environment variables or mounted files.
*/}}
{{- define "mms-connector.configFile" -}}
# Rendered by the mms-connector Helm chart from its values; do not edit in the cluster.
# Check a copy with: mms-connector check-config FILE
kafka:
  {{- include "mms-connector.settings" (dict "settings" (omit .Values.kafka "common" "producer" "secrets") "indent" 2) }}
  common: {{ .Values.kafka.common | default dict | toJson }}
  producer: {{ .Values.kafka.producer | default dict | toJson }}
  {{- with .Values.kafka.secrets }}
  secrets: {{ toJson . }}
  {{- end }}
schema_registry:
  {{- include "mms-connector.settings" (dict "settings" .Values.schema_registry "indent" 2) }}
server:
  host: "0.0.0.0"
  port: {{ .Values.containerPort | int }}
  {{- include "mms-connector.settings" (dict "settings" .Values.server "indent" 2) }}
media:
  store: {{ .Values.media.store | toJson }}
  {{- if eq .Values.media.store "s3" }}
  s3:
    {{- include "mms-connector.settings" (dict "settings" .Values.media.s3 "indent" 4) }}
  {{- else }}
  root: {{ include "mms-connector.mediaPath" . | toJson }}
  {{- end }}
mirror:
  {{- $mirror := .Values.mirror }}
  {{- range include "mms-connector.mirrorChartKeys" . | fromJsonArray }}
  {{- $mirror = omit $mirror . }}
  {{- end }}
  {{- include "mms-connector.settings" (dict "settings" $mirror "indent" 2) }}
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
  {{- include "mms-connector.settings" (dict "settings" (omit $settings "auth" "media_fetch") "indent" 4) }}
  {{- with $settings.media_fetch }}
    media_fetch:
    {{- include "mms-connector.settings" (dict "settings" . "indent" 6) }}
  {{- end }}
  {{- $auth := include "mms-connector.auth" ($settings.auth | default dict) | fromJson }}
  {{- if not (or $auth.basic $auth.token $auth.signature $auth.allow_cidrs $auth.unauthenticated) }}
  {{- fail (printf "providers.%s: enabled without auth.basic, auth.token, auth.signature or auth.allow_cidrs, so anyone could post callbacks; set providers.%s.auth.unauthenticated: true if that is meant" $name $name) }}
  {{- end }}
  {{- if $auth }}
    auth:
    {{- include "mms-connector.settings" (dict "settings" $auth "indent" 6) }}
  {{- end }}
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
{{- /*
Shutdown budget. After the preStop sleep, SIGTERM: uvicorn stops accepting and waits for the
in-flight callbacks, each at most read_timeout_seconds (receiving the body) + deadline_seconds
(waiting for Kafka), but never longer than its graceful-shutdown timeout, which the connector
sets to kafka.flush_timeout_seconds; then the lifespan flushes the producer, again up to
kafka.flush_timeout_seconds.
*/}}
{{- $callback := 0.0 }}
{{- range $name, $settings := .Values.providers }}
{{- if $settings.enabled }}
{{- $callback = maxf $callback (addf ($settings.read_timeout_seconds | default 30.0) ($settings.deadline_seconds | default 8.0)) }}
{{- end }}
{{- end }}
{{- $flush := 30.0 }}
{{- if not (kindIs "invalid" .Values.kafka.flush_timeout_seconds) }}
{{- $flush = float64 .Values.kafka.flush_timeout_seconds }}
{{- end }}
{{- $drain := minf $callback $flush }}
{{- $needed := addf .Values.shutdown.preStopSleepSeconds $drain $flush }}
{{- if lt (float64 .Values.shutdown.terminationGracePeriodSeconds) (float64 $needed) }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%v) must be at least preStopSleepSeconds + the drain of in-flight callbacks (the largest read_timeout_seconds + deadline_seconds of an enabled provider, capped at kafka.flush_timeout_seconds) + kafka.flush_timeout_seconds for the final flush: %v + %v + %v = %v; less cuts the shutdown short" .Values.shutdown.terminationGracePeriodSeconds .Values.shutdown.preStopSleepSeconds $drain $flush $needed) }}
{{- end }}
{{- /* Every secret reference must be satisfiable in the pod. */}}
{{- $envs := keys (.Values.secretEnv | default dict) }}
{{- range .Values.extraEnv }}{{ $envs = append $envs .name }}{{ end }}
{{- $mounts := list }}
{{- range concat (.Values.secretFiles | default list) (.Values.extraVolumeMounts | default list) }}
{{- $mounts = append $mounts (printf "%s/" (trimSuffix "/" .mountPath)) }}
{{- end }}
{{- range include "mms-connector.secretRefs" . | fromJsonArray }}
{{- if .env }}
{{- if and (not $.Values.existingSecret) (not (has .env $envs)) }}
{{- fail (printf "%s: environment variable %s is set by neither secretEnv nor extraEnv (and no existingSecret is given); the connector would not start" .key .env) }}
{{- end }}
{{- else }}
{{- $file := .file }}
{{- $mounted := false }}
{{- range $mounts }}{{ if hasPrefix . $file }}{{ $mounted = true }}{{ end }}{{ end }}
{{- if not $mounted }}
{{- fail (printf "%s: file %s is under no secretFiles or extraVolumeMounts mountPath; the connector would not find it" .key .file) }}
{{- end }}
{{- end }}
{{- end }}
{{- range include "mms-connector.enabledProviders" . | fromJsonArray }}
{{- if and .tokenInPath (eq (trimSuffix "/" .path) "") }}
{{- fail (printf "providers.%s: with auth.token.in_path the callback route is <path>/<token> and the Ingress routes the prefix <path>/; path / would expose /healthz, /readyz and /metrics" .name) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.media.store "filesystem") (eq .Values.media.volume.type "persistentVolumeClaim") (not .Values.media.volume.persistentVolumeClaim.existingClaim) (include "mms-connector.manyPods" .) (not (has "ReadWriteMany" .Values.media.volume.persistentVolumeClaim.accessModes)) }}
{{- fail "media.volume: a chart-created PersistentVolumeClaim shared by more than one pod needs accessModes [ReadWriteMany]" }}
{{- end }}
{{- if and .Values.ingress.enabled (eq (include "mms-connector.enabledProviders" . | fromJsonArray | len) 0) }}
{{- fail "ingress.enabled but no provider is enabled: the Ingress would have no callback path" }}
{{- end }}
{{- end }}
