{{/*
What the receiver's and the mirror's pods share: scheduling, security, the config file, the
credentials and the volumes. {"ctx": $, "selector": selector labels (YAML)} for podSpecCommon;
$ for the rest. Each renders at column 0: callers indent it.
*/}}
{{- define "mms-connector.podSpecCommon" -}}
{{- $ := .ctx -}}
serviceAccountName: {{ include "mms-connector.serviceAccountName" $ }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml $.Values.podSecurityContext | nindent 2 }}
{{- with $.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $.Values.affinity }}
affinity:
  {{- toYaml $.Values.affinity | nindent 2 }}
{{- else if eq $.Values.podAntiAffinity "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- .selector | nindent 14 }}
{{- else if eq $.Values.podAntiAffinity "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- .selector | nindent 12 }}
{{- end }}
{{- if $.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - topologyKey: {{ $.Values.topologySpread.topologyKey }}
    maxSkew: {{ $.Values.topologySpread.maxSkew }}
    whenUnsatisfiable: {{ $.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- .selector | nindent 8 }}
{{- end }}
{{- end }}

{{/* Container env: plain extraEnv entries and the credentials' Secret. */}}
{{- define "mms-connector.containerEnv" -}}
{{- with .Values.extraEnv }}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if or .Values.existingSecret .Values.secretEnv }}
envFrom:
  - secretRef:
      name: {{ .Values.existingSecret | default (include "mms-connector.secretName" .) }}
{{- end }}
{{- end }}

{{- define "mms-connector.volumeMounts" -}}
volumeMounts:
  - name: config
    mountPath: {{ include "mms-connector.configDir" . }}
    readOnly: true
  {{- if eq .Values.media.store "filesystem" }}
  - name: media
    mountPath: {{ include "mms-connector.mediaPath" . }}
  {{- end }}
  - name: tmp
    mountPath: /tmp
  {{- range $i, $files := .Values.secretFiles }}
  - name: {{ printf "secret-files-%d" $i }}
    mountPath: {{ $files.mountPath }}
    readOnly: true
  {{- end }}
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{- define "mms-connector.volumes" -}}
volumes:
  - name: config
    configMap:
      name: {{ include "mms-connector.fullname" . }}
  {{- if eq .Values.media.store "filesystem" }}
  - name: media
    {{- if eq .Values.media.volume.type "persistentVolumeClaim" }}
    persistentVolumeClaim:
      claimName: {{ include "mms-connector.pvcName" . }}
    {{- else }}
    emptyDir:
      {{- toYaml (.Values.media.volume.emptyDir | default dict) | nindent 6 }}
    {{- end }}
  {{- end }}
  # The root filesystem is read-only; Python and librdkafka may need a scratch directory.
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- range $i, $files := .Values.secretFiles }}
  # Secret {{ $files.secretName }} as files, for {file: PATH} references in the config.
  - name: {{ printf "secret-files-%d" $i }}
    secret:
      secretName: {{ $files.secretName }}
      {{- with $files.items }}
      items:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  {{- end }}
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Checksums that roll the pods when the config file or the chart-created Secret change. */}}
{{- define "mms-connector.checksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if and .Values.secretEnv (not .Values.existingSecret) }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/*
Startup and liveness on /healthz (the process serves), readiness on /readyz (Kafka and the
registry answer), on the container port named http. The probes' timings.
*/}}
{{- define "mms-connector.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .startup.periodSeconds }}
  timeoutSeconds: {{ .startup.timeoutSeconds }}
  failureThreshold: {{ .startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .liveness.periodSeconds }}
  timeoutSeconds: {{ .liveness.timeoutSeconds }}
  failureThreshold: {{ .liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ .readiness.periodSeconds }}
  timeoutSeconds: {{ .readiness.timeoutSeconds }}
  failureThreshold: {{ .readiness.failureThreshold }}
  successThreshold: {{ .readiness.successThreshold }}
{{- end }}
