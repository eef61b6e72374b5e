{{/*
The chart's name.
*/}}
{{- define "publish-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: at most 63 characters (DNS labels);
the release name alone when it already contains the chart's name.
*/}}
{{- define "publish-worker.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "publish-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "publish-worker.labels" -}}
helm.sh/chart: {{ include "publish-worker.chart" . }}
{{ include "publish-worker.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: only name and instance, which never change over a release's
life (a Deployment's selector is immutable).
*/}}
{{- define "publish-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "publish-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "publish-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "publish-worker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret with the key ring and the OAuth2 client secret: the existing one or
the chart's.
*/}}
{{- define "publish-worker.secretName" -}}
{{- default (include "publish-worker.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/*
The image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "publish-worker.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
librdkafka property name -> the worker's variable: security.protocol ->
RDKAFKA_SECURITY_PROTOCOL.
*/}}
{{- define "publish-worker.rdkafkaEnvName" -}}
{{- printf "RDKAFKA_%s" (. | replace "." "_" | upper) }}
{{- end }}

{{/*
A value as a quoted string. Helm reads every number in values as a float, so
an integer such as 2000000 is printed as an integer, not as 2e+06.
*/}}
{{- define "publish-worker.quote" -}}
{{- if kindIs "float64" . }}
{{- . | int64 | toString | quote }}
{{- else }}
{{- . | toString | quote }}
{{- end }}
{{- end }}

{{/*
The container's environment, shared by the Deployment and the `helm test` pod.
*/}}
{{- define "publish-worker.env" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: KAFKA_GROUP_ID
  value: {{ .Values.kafka.groupId | quote }}
- name: TOPIC_PUBLISH_REQUESTS
  value: {{ .Values.kafka.topics.publishRequests | quote }}
- name: TOPIC_PUBLISH_RESULTS
  value: {{ .Values.kafka.topics.publishResults | quote }}
- name: TOPIC_ALERTS
  value: {{ .Values.kafka.topics.alerts | quote }}
- name: TOPIC_DEAD_LETTER
  value: {{ .Values.kafka.topics.deadLetter | quote }}
- name: TOPIC_ACCOUNT_EVENTS
  value: {{ .Values.kafka.topics.accountEvents | quote }}
{{- range $property, $value := .Values.kafka.config }}
- name: {{ include "publish-worker.rdkafkaEnvName" $property }}
  value: {{ include "publish-worker.quote" $value }}
{{- end }}
{{- range $property, $ref := .Values.kafka.secretConfig }}
- name: {{ include "publish-worker.rdkafkaEnvName" $property }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name | quote }}
      key: {{ $ref.key | quote }}
{{- end }}
- name: REDIS_URL
{{- if .Values.redis.existingSecret.name }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret.name | quote }}
      key: {{ .Values.redis.existingSecret.key | quote }}
{{- else }}
  value: {{ .Values.redis.url | quote }}
{{- end }}
- name: REDIS_ALLOW_EVICTION
  value: {{ .Values.redis.allowEviction | toString | quote }}
- name: THREADS_API_BASE_URL
  value: {{ .Values.threadsApi.baseUrl | quote }}
{{- if .Values.oauth2.tokenUrl }}
- name: OAUTH2_TOKEN_URL
  value: {{ .Values.oauth2.tokenUrl | quote }}
- name: OAUTH2_CLIENT_ID
  value: {{ .Values.oauth2.clientId | quote }}
- name: OAUTH2_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "publish-worker.secretName" . | quote }}
      key: {{ .Values.secret.keys.oauth2ClientSecret | quote }}
{{- end }}
- name: TOKEN_KEYS_FILE
  value: {{ printf "%s/token-keys" (.Values.tokenKeysMountPath | trimSuffix "/") | quote }}
- name: WORKER_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: WORKER_CONCURRENCY
  value: {{ include "publish-worker.quote" .Values.worker.concurrency }}
- name: METRICS_ADDR
  value: {{ printf "0.0.0.0:%d" (.Values.metrics.port | int) | quote }}
- name: LOG_LEVEL
  value: {{ .Values.worker.logLevel | quote }}
- name: TOKEN_REFRESH_AHEAD_S
  value: {{ include "publish-worker.quote" .Values.worker.tokenRefreshAheadSeconds }}
- name: AUTH_ALERT_THRESHOLD
  value: {{ include "publish-worker.quote" .Values.worker.authAlertThreshold }}
- name: AUTH_ALERT_WINDOW_S
  value: {{ include "publish-worker.quote" .Values.worker.authAlertWindowSeconds }}
- name: PUBLISH_MAX_ATTEMPTS
  value: {{ include "publish-worker.quote" .Values.worker.publishMaxAttempts }}
- name: SHUTDOWN_TIMEOUT_S
  value: {{ include "publish-worker.quote" .Values.worker.shutdownTimeoutSeconds }}
- name: LIVENESS_STALL_S
  value: {{ include "publish-worker.quote" .Values.worker.livenessStallSeconds }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The container's mounts, shared by the Deployment and the `helm test` pod.
*/}}
{{- define "publish-worker.volumeMounts" -}}
- name: token-keys
  mountPath: {{ .Values.tokenKeysMountPath | quote }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The pod's volumes: the key ring alone out of the Secret (the OAuth2 client
secret travels as a variable, not as a file), readable by the pod's fsGroup.
Mode 0440, not Kubernetes' 0644: the worker refuses a key ring that other
users can read.
*/}}
{{- define "publish-worker.volumes" -}}
- name: token-keys
  secret:
    secretName: {{ include "publish-worker.secretName" . | quote }}
    defaultMode: 0440
    items:
      - key: {{ .Values.secret.keys.tokenKeys | quote }}
        path: token-keys
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Refuses values that would render a broken release, each with what to change.
Included by the Deployment, which every render has.
*/}}
{{- define "publish-worker.validate" -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are both true: choose one (KEDA makes its own HorizontalPodAutoscaler, and two autoscalers would fight over the replica count)" }}
{{- end }}
{{- $needed := add (.Values.worker.shutdownTimeoutSeconds | int) 10 }}
{{- if lt (.Values.terminationGracePeriodSeconds | int) $needed }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least worker.shutdownTimeoutSeconds + 10 (%d): the worker needs that long to finish its posts, leave the group and flush its results" (.Values.terminationGracePeriodSeconds | int) $needed) }}
{{- end }}
{{- range $property := list "bootstrap.servers" "group.id" "enable.auto.commit" "enable.auto.offset.store" "enable.idempotence" "enable.random.seed" }}
{{- if or (hasKey $.Values.kafka.config $property) (hasKey $.Values.kafka.secretConfig $property) }}
{{- fail (printf "kafka.config: %s is set by the worker and cannot be overridden (use kafka.bootstrapServers and kafka.groupId for the broker list and the group)" $property) }}
{{- end }}
{{- end }}
{{- /* As the worker's own check (common/config.c): these may be set, but only
       to values that keep its guarantees. */}}
{{- $guarded := dict "partition.assignment.strategy" (list "cooperative-sticky") "transactional.id" (list) "acks" (list "all" "-1") "request.required.acks" (list "all" "-1") "auto.offset.reset" (list "earliest" "smallest" "beginning") }}
{{- range $property, $allowed := $guarded }}
{{- if hasKey $.Values.kafka.secretConfig $property }}
{{- fail (printf "kafka.secretConfig: %s is not a secret and the worker checks its value: use kafka.config" $property) }}
{{- end }}
{{- if hasKey $.Values.kafka.config $property }}
{{- $raw := index $.Values.kafka.config $property }}
{{- $value := ternary ($raw | int64 | toString) ($raw | toString) (kindIs "float64" $raw) | lower }}
{{- if empty $allowed }}
{{- fail (printf "kafka.config: %s cannot be set: it would break the worker's guarantees" $property) }}
{{- else if not (has $value $allowed) }}
{{- fail (printf "kafka.config: %s=%s would break the worker's guarantees (allowed: %s)" $property $value (join ", " $allowed)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.oauth2.tokenUrl (not .Values.secret.existingSecret) (not .Values.secret.oauth2ClientSecret) }}
{{- fail "oauth2.tokenUrl is set but there is no client secret: set secret.oauth2ClientSecret, or secret.existingSecret to a Secret that holds it" }}
{{- end }}
{{- if and .Values.redis.existingSecret.name (not .Values.redis.existingSecret.key) }}
{{- fail "redis.existingSecret.name is set: set redis.existingSecret.key too (the key that holds the Redis URL)" }}
{{- end }}
{{- if and .Values.keda.enabled (not .Values.kafka.bootstrapServers) }}
{{- fail "keda.enabled: set kafka.bootstrapServers, which the ScaledObject measures the lag with" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled: a ServiceMonitor scrapes through the metrics Service" }}
{{- end }}
{{- end }}

{{/*
The label matchers of the workers' own series in the alert rules
(files/alert-rules.yaml): the labels the ServiceMonitor's scrapes carry, whose
job is the metrics Service's name, unless prometheusRule.selector replaces them.
*/}}
{{- define "publish-worker.ruleSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else }}
{{- printf "job=%q, namespace=%q" (printf "%s-metrics" (include "publish-worker.fullname" .)) .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
The label matchers of the Deployment's series in kube-state-metrics.
*/}}
{{- define "publish-worker.deploymentSelector" -}}
{{- printf "namespace=%q, deployment=%q" .Release.Namespace (include "publish-worker.fullname" .) }}
{{- end }}
