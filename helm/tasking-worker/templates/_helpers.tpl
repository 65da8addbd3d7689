{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "tasking-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: the release name, plus the chart name unless the release already has it.
*/}}
{{- define "tasking-worker.fullname" -}}
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

{{- define "tasking-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every object carries.
*/}}
{{- define "tasking-worker.labels" -}}
helm.sh/chart: {{ include "tasking-worker.chart" . }}
{{ include "tasking-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tasking-worker
{{- end }}

{{/*
Labels that select the worker's pods (never change them on upgrade: selectors are immutable).
*/}}
{{- define "tasking-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tasking-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tasking-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tasking-worker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The container image: repository@digest when a digest is given, else repository:tag.
*/}}
{{- define "tasking-worker.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding the credentials (the chart's own, or existingSecret).
*/}}
{{- define "tasking-worker.secretName" -}}
{{- default (include "tasking-worker.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/*
Key of the Kafka CA certificate in that Secret, or "" when there is none.
*/}}
{{- define "tasking-worker.caKey" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecretCaKey }}
{{- else if .Values.secrets.kafkaCaCert }}
{{- print "kafka-ca.crt" }}
{{- end }}
{{- end }}

{{/*
Keys of the mutual-TLS client certificate and key in that Secret, or "" when there are none.
*/}}
{{- define "tasking-worker.clientCertKey" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecretClientCertKey }}
{{- else if .Values.secrets.kafkaClientCert }}
{{- print "kafka-client.crt" }}
{{- end }}
{{- end }}

{{- define "tasking-worker.clientKeyKey" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecretClientKeyKey }}
{{- else if .Values.secrets.kafkaClientKey }}
{{- print "kafka-client.key" }}
{{- end }}
{{- end }}

{{/*
The Kafka TLS files mounted from the Secret (CA, client certificate, client key), as volume items.
*/}}
{{- define "tasking-worker.kafkaFiles" -}}
{{- $items := list }}
{{- with include "tasking-worker.caKey" . }}{{ $items = append $items (dict "key" . "path" "ca.crt") }}{{ end }}
{{- with include "tasking-worker.clientCertKey" . }}{{ $items = append $items (dict "key" . "path" "client.crt") }}{{ end }}
{{- with include "tasking-worker.clientKeyKey" . }}{{ $items = append $items (dict "key" . "path" "client.key") }}{{ end }}
{{- if $items }}{{ toJson $items }}{{ end }}
{{- end }}

{{/*
What every container that talks to Kafka gets: the settings, the secrets, the TLS files.
*/}}
{{- define "tasking-worker.kafkaEnv" -}}
envFrom:
  - configMapRef:
      name: {{ include "tasking-worker.fullname" . }}
env:
  {{- $secretName := include "tasking-worker.secretName" . }}
  {{- range (include "tasking-worker.secretEnvNames" . | fromJsonArray) }}
  - name: {{ . }}
    valueFrom:
      secretKeyRef:
        name: {{ $secretName }}
        key: {{ . }}
        optional: true
  {{- end }}
{{- end }}

{{- define "tasking-worker.kafkaFilesMount" -}}
{{- if include "tasking-worker.kafkaFiles" . }}
- name: kafka-ca
  mountPath: {{ include "tasking-worker.caDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "tasking-worker.kafkaFilesVolume" -}}
{{- with include "tasking-worker.kafkaFiles" . }}
- name: kafka-ca
  secret:
    secretName: {{ include "tasking-worker.secretName" $ }}
    defaultMode: 0440
    items:
      {{- toYaml (fromJsonArray .) | nindent 6 }}
{{- end }}
{{- end }}

{{- define "tasking-worker.caDir" -}}
/etc/tasking-worker/kafka
{{- end }}

{{/*
Secret variables, each read from the Secret when the key exists there.
*/}}
{{- define "tasking-worker.secretEnvNames" -}}
{{- list "TASKING_ONEATLAS__API_KEY" "TASKING_UP42__USERNAME" "TASKING_UP42__PASSWORD" "TASKING_KAFKA__SASL_PASSWORD" "TASKING_KAFKA__SSL_KEY_PASSWORD" "TASKING_KAFKA__OAUTH__CLIENT_SECRET" | toJson }}
{{- end }}

{{/*
Render-time checks: inconsistent values fail the render with a message saying what to change.
*/}}
{{- define "tasking-worker.validate" -}}
{{- $a := .Values.autoscaling }}
{{- $partitions := int .Values.kafka.partitions }}
{{- if and $a.hpa.enabled $a.keda.enabled }}
{{- fail "autoscaling.hpa.enabled and autoscaling.keda.enabled are both true: enable at most one autoscaler (both would fight over the Deployment's replicas)" }}
{{- end }}
{{- if and $a.hpa.enabled (gt (int $a.hpa.maxReplicas) $partitions) }}
{{- fail (printf "autoscaling.hpa.maxReplicas (%d) exceeds kafka.partitions (%d): replicas beyond the partition count stay idle" (int $a.hpa.maxReplicas) $partitions) }}
{{- end }}
{{- if and $a.keda.enabled (gt (int $a.keda.maxReplicaCount) $partitions) }}
{{- fail (printf "autoscaling.keda.maxReplicaCount (%d) exceeds kafka.partitions (%d): replicas beyond the partition count stay idle" (int $a.keda.maxReplicaCount) $partitions) }}
{{- end }}
{{- if and (not $a.hpa.enabled) (not $a.keda.enabled) (gt (int .Values.replicaCount) $partitions) }}
{{- fail (printf "replicaCount (%d) exceeds kafka.partitions (%d): replicas beyond the partition count stay idle" (int .Values.replicaCount) $partitions) }}
{{- end }}
{{- if and $a.hpa.enabled (gt (int $a.hpa.minReplicas) (int $a.hpa.maxReplicas)) }}
{{- fail "autoscaling.hpa.minReplicas exceeds autoscaling.hpa.maxReplicas" }}
{{- end }}
{{- if and $a.keda.enabled (gt (int $a.keda.minReplicaCount) (int $a.keda.maxReplicaCount)) }}
{{- fail "autoscaling.keda.minReplicaCount exceeds autoscaling.keda.maxReplicaCount" }}
{{- end }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (float64 .Values.config.shutdownGraceSeconds) }}
{{- fail "terminationGracePeriodSeconds must exceed config.shutdownGraceSeconds, or the worker is killed before it has drained" }}
{{- end }}
{{- if and .Values.secrets.oneatlasApiKey (not .Values.config.oneatlas.endUsers) }}
{{- fail "config.oneatlas.endUsers is required with secrets.oneatlasApiKey: the end users declared to Airbus on every order (the worker refuses to start without them)" }}
{{- end }}
{{- if and (hasPrefix "SASL_" .Values.config.kafka.securityProtocol) (not .Values.config.kafka.saslMechanism) }}
{{- fail "config.kafka.saslMechanism is required when config.kafka.securityProtocol is SASL_PLAINTEXT or SASL_SSL" }}
{{- end }}
{{- $k := .Values.config.kafka }}
{{- if and (eq $k.saslMechanism "OAUTHBEARER") (not (and $k.oauth.tokenUrl $k.oauth.clientId)) }}
{{- fail "config.kafka.oauth.tokenUrl and config.kafka.oauth.clientId are required with saslMechanism OAUTHBEARER (the client secret: secrets.kafkaOauthClientSecret)" }}
{{- end }}
{{- if ne (empty (include "tasking-worker.clientCertKey" .)) (empty (include "tasking-worker.clientKeyKey" .)) }}
{{- fail "mutual TLS needs both the client certificate and its key (secrets.kafkaClientCert and secrets.kafkaClientKey, or both existingSecretClient*Key)" }}
{{- end }}
{{- if and (include "tasking-worker.clientCertKey" .) (not (has $k.securityProtocol (list "SSL" "SASL_SSL"))) }}
{{- fail "a client certificate needs config.kafka.securityProtocol SSL or SASL_SSL" }}
{{- end }}
{{- end }}

{{/*
The TriggerAuthentication KEDA uses: the one named in values, else the chart's own when Kafka
needs credentials or a CA, else none ("").
*/}}
{{- define "tasking-worker.kedaAuthName" -}}
{{- $k := .Values.config.kafka }}
{{- if .Values.autoscaling.keda.authenticationRef }}
{{- .Values.autoscaling.keda.authenticationRef }}
{{- else if or (hasPrefix "SASL_" $k.securityProtocol) (include "tasking-worker.caKey" .) }}
{{- printf "%s-kafka" (include "tasking-worker.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Labels of the `helm test` pod: distinct from the worker's selector labels, so the Service, the
PodDisruptionBudget and the NetworkPolicy never select it.
*/}}
{{- define "tasking-worker.testSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-test" (include "tasking-worker.name" .) }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tasking-worker.testLabels" -}}
helm.sh/chart: {{ include "tasking-worker.chart" . }}
{{ include "tasking-worker.testSelectorLabels" . }}
app.kubernetes.io/component: test
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
