{{/*
The sidecar, as named templates an application's chart includes in its own
pod template (see README.md, "Adding strata to your own chart"). Each takes a
context with .Values (strata's values) and .Release; .Capabilities is
optional (it enables the Kubernetes version check of native sidecar mode):

  {{- $strata := dict "Values" .Values.strata "Release" .Release "Capabilities" .Capabilities }}

  metadata.labels        strata.sidecar.podLabels
  metadata.annotations   strata.sidecar.podAnnotations   (checksum/strata-config: pods roll on config change)
  spec.securityContext   strata.sidecar.podSecurityContext
  spec.terminationGracePeriodSeconds   strata.terminationGracePeriodSeconds
  spec.initContainers    strata.sidecar.initContainers   (native sidecar mode: strata, else nothing)
  spec.containers        strata.sidecar.containers       (classic mode: strata, else nothing)
  the app's env          strata.sidecar.clientEnv        (STRATA_ADDR, STRATA_HOST, STRATA_PORT,
                                                          STRATA_SOCKET with unixSocket.enabled)
  the app's volumeMounts strata.sidecar.clientVolumeMounts (the socket's directory; nothing
                                                          without unixSocket.enabled)
  spec.volumes           strata.sidecar.volumes

The ConfigMap the container reads is rendered by the strata chart itself
(templates/configmap.yaml), in the subchart's scope, under the same name.
*/}}

{{/* strata's config file (config/strata.yaml's schema), from .Values.config plus the keys the chart owns. */}}
{{- define "strata.config" -}}
{{- $v := .Values -}}
{{- $cfg := deepCopy ($v.config | default dict) -}}
{{- $server := get $cfg "server" | default dict -}}
{{- $_ := set $server "port" (int $v.ports.memcached) -}}
{{- if $v.unixSocket.enabled -}}
{{- $_ := set $server "unix_socket" (printf "%s/%s" (trimSuffix "/" $v.unixSocket.dir) $v.unixSocket.fileName) -}}
{{- $_ := set $server "unix_socket_mode" (toString $v.unixSocket.mode) -}}
{{- end -}}
{{- $_ := set $cfg "server" $server -}}
{{- $_ := set $cfg "metrics" (dict "enabled" true "listen" (printf "0.0.0.0:%d" (int $v.ports.metrics))) -}}
{{- $tiers := get $cfg "tiers" | default dict -}}
{{- if include "strata.ssdEnabled" . -}}
{{- $_ := include "strata.ssdBytes" . -}}
{{- $ssd := get $tiers "ssd" | default dict -}}
{{- $_ := set $ssd "path" (printf "/var/cache/strata/%s" $v.cacheVolume.fileName) -}}
{{- $_ := set $tiers "ssd" $ssd -}}
{{- else -}}
{{- $_ := unset $tiers "ssd" -}}
{{- end -}}
{{- $_ := set $cfg "tiers" $tiers -}}
{{- if ($v.upstreamPool | default dict).enabled -}}
{{- $up := get $cfg "upstream" | default dict -}}
{{- if not (get $up "servers") -}}
{{- $_ := set $up "servers" (list (include "strata.upstreamPoolEntry" .)) -}}
{{- end -}}
{{- $_ := set $cfg "upstream" $up -}}
{{- end -}}
# strata's configuration, rendered by the strata Helm chart from .Values.config.
# The chart owns server.port, server.unix_socket(_mode), metrics.* and
# tiers.ssd.path (see ports, unixSocket and cacheVolume in values.yaml).
{{ toYaml $cfg }}
{{- end -}}

{{/* The pod labels that the PodMonitor and the metrics Service select. */}}
{{- define "strata.sidecar.podLabels" -}}
strata/sidecar: {{ include "strata.fullname" . | quote }}
{{- end -}}

{{/* Pod annotations: a checksum of strata's config, so a change rolls the pods. */}}
{{- define "strata.sidecar.podAnnotations" -}}
checksum/strata-config: {{ include "strata.config" . | sha256sum }}
{{- end -}}

{{/* Pod-level security settings strata needs: fsGroup makes the cache volume writable by uid 10001. */}}
{{- define "strata.sidecar.podSecurityContext" -}}
fsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroupChangePolicy: OnRootMismatch
{{- end -}}

{{/* The strata container's securityContext: restricted, with the seccomp choice. */}}
{{- define "strata.sidecar.securityContext" -}}
{{- $sc := .Values.securityContext -}}
runAsNonRoot: true
runAsUser: {{ $sc.runAsUser }}
runAsGroup: {{ $sc.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: {{ .Values.seccomp.profile }}
  {{- if eq .Values.seccomp.profile "Localhost" }}
  localhostProfile: {{ required "seccomp.localhostProfile is required with seccomp.profile Localhost" .Values.seccomp.localhostProfile | quote }}
  {{- end }}
{{- end -}}

{{/* The strata container's resources: resources, with limits.memory and requests.memory computed when unset. */}}
{{- define "strata.sidecar.resources" -}}
{{- $res := deepCopy (.Values.resources | default dict) -}}
{{- $limits := get $res "limits" | default dict -}}
{{- if not (get $limits "memory") -}}
{{- $_ := set $limits "memory" (include "strata.mib" (include "strata.memoryBytes" . | int64)) -}}
{{- else if .Values.sizing.checkMemoryLimit -}}
{{- $need := include "strata.memoryBytes" . | int64 -}}
{{- $have := include "strata.quantityBytes" (dict "value" (get $limits "memory") "what" "resources.limits.memory") | int64 -}}
{{- if lt $have $need -}}
{{- fail (printf "resources.limits.memory (%v) is below what strata needs: 24Mi + RAM tier x 1.2 + server.max_connection_memory + 2 x workers x max_item_size + 2Ki x max_connections (+ 3 SSD regions + SSD index) = %s. Raise it, or leave it unset to have the chart compute it (sizing.checkMemoryLimit: false skips this check)" (get $limits "memory") (include "strata.mib" $need)) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $res "limits" $limits -}}
{{- $requests := get $res "requests" | default dict -}}
{{- if not (get $requests "memory") -}}
{{- $_ := set $requests "memory" (get $limits "memory") -}}
{{- end -}}
{{- $_ := set $res "requests" $requests -}}
{{- toYaml $res -}}
{{- end -}}

{{/* One probe: (list . "startup" "/readyz"). */}}
{{- define "strata.sidecar.probe" -}}
{{- $ctx := index . 0 -}}
{{- $p := index $ctx.Values.probes (index . 1) -}}
httpGet:
  path: {{ index . 2 }}
  port: {{ $ctx.Values.ports.metrics }}
  scheme: HTTP
periodSeconds: {{ $p.periodSeconds }}
timeoutSeconds: {{ $p.timeoutSeconds }}
failureThreshold: {{ $p.failureThreshold }}
{{- if $p.initialDelaySeconds }}
initialDelaySeconds: {{ $p.initialDelaySeconds }}
{{- end }}
{{- end -}}

{{/* The strata container, as one item of a containers or initContainers list. */}}
{{- define "strata.sidecar.container" -}}
{{- $v := .Values -}}
{{- if and $v.sidecar.native .Capabilities -}}
{{- if semverCompare "<1.29.0-0" .Capabilities.KubeVersion.Version -}}
{{- fail (printf "sidecar.native needs Kubernetes 1.29 or later (this is %s); set sidecar.native: false" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- end -}}
- name: {{ $v.sidecar.containerName }}
  image: {{ include "strata.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if $v.sidecar.native }}
  # Native sidecar (Kubernetes >= 1.29): starts, and passes its startup
  # probe, before the app's containers start; stops after they have exited.
  restartPolicy: Always
  {{- end }}
  command:
    - /usr/local/bin/strata
  args:
    - --config
    - /etc/strata/strata.yaml
    {{- range $v.sidecar.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  ports:
    - name: strata-memcache
      containerPort: {{ $v.ports.memcached }}
      protocol: TCP
    - name: strata-metrics
      containerPort: {{ $v.ports.metrics }}
      protocol: TCP
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    {{- with $v.sidecar.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if $v.probes.startup.enabled }}
  startupProbe:
    {{- include "strata.sidecar.probe" (list . "startup" "/readyz") | nindent 4 }}
  {{- end }}
  {{- if $v.probes.liveness.enabled }}
  livenessProbe:
    {{- include "strata.sidecar.probe" (list . "liveness" "/healthz") | nindent 4 }}
  {{- end }}
  {{- if $v.probes.readiness.enabled }}
  readinessProbe:
    {{- include "strata.sidecar.probe" (list . "readiness" "/readyz") | nindent 4 }}
  {{- end }}
  {{- with $v.sidecar.lifecycle }}
  lifecycle:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  resources:
    {{- include "strata.sidecar.resources" . | nindent 4 }}
  securityContext:
    {{- include "strata.sidecar.securityContext" . | nindent 4 }}
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
    - name: strata-config
      mountPath: /etc/strata
      readOnly: true
    - name: strata-tmp
      mountPath: /tmp
    {{- if $v.unixSocket.enabled }}
    - name: strata-socket
      mountPath: {{ $v.unixSocket.dir | quote }}
    {{- end }}
    {{- if include "strata.ssdEnabled" . }}
    - name: strata-cache
      mountPath: /var/cache/strata
      {{- if and (eq $v.cacheVolume.kind "hostPath") $v.cacheVolume.hostPath.subPathExpr }}
      subPathExpr: {{ $v.cacheVolume.hostPath.subPathExpr | quote }}
      {{- end }}
    {{- end }}
{{- end -}}

{{/* strata for spec.initContainers: the container in native sidecar mode, else nothing. */}}
{{- define "strata.sidecar.initContainers" -}}
{{- if .Values.sidecar.native }}{{ include "strata.sidecar.container" . }}{{ end -}}
{{- end -}}

{{/* strata for spec.containers: the container in classic mode, else nothing. */}}
{{- define "strata.sidecar.containers" -}}
{{- if not .Values.sidecar.native }}{{ include "strata.sidecar.container" . }}{{ end -}}
{{- end -}}

{{/* Environment variables for the application container: where strata listens. */}}
{{- define "strata.sidecar.clientEnv" -}}
- name: STRATA_HOST
  value: "127.0.0.1"
- name: STRATA_PORT
  value: {{ .Values.ports.memcached | toString | quote }}
- name: STRATA_ADDR
  value: {{ printf "127.0.0.1:%v" .Values.ports.memcached | quote }}
{{- if .Values.unixSocket.enabled }}
- name: STRATA_SOCKET
  value: {{ printf "%s/%s" (trimSuffix "/" .Values.unixSocket.dir) .Values.unixSocket.fileName | quote }}
{{- end }}
{{- end -}}

{{/* volumeMounts for the application container: the unix socket's directory (nothing when unixSocket.enabled is false). */}}
{{- define "strata.sidecar.clientVolumeMounts" -}}
{{- if .Values.unixSocket.enabled -}}
- name: strata-socket
  mountPath: {{ .Values.unixSocket.dir | quote }}
{{- end -}}
{{- end -}}

{{/* The volumes the strata container mounts, as items of spec.volumes. */}}
{{- define "strata.sidecar.volumes" -}}
{{- $v := .Values -}}
- name: strata-config
  configMap:
    name: {{ include "strata.configMapName" . }}
- name: strata-tmp
  emptyDir:
    sizeLimit: {{ $v.sidecar.tmpSizeLimit }}
{{- if $v.unixSocket.enabled }}
- name: strata-socket
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- if include "strata.ssdEnabled" . }}
{{- $size := include "strata.cacheVolumeSize" . }}
- name: strata-cache
  {{- if eq $v.cacheVolume.kind "emptyDir" }}
  emptyDir:
    sizeLimit: {{ $size }}
  {{- else if eq $v.cacheVolume.kind "ephemeral" }}
  {{- $e := $v.cacheVolume.ephemeral }}
  ephemeral:
    volumeClaimTemplate:
      metadata:
        labels:
          {{- include "strata.labels" . | nindent 10 }}
        {{- with $e.annotations }}
        annotations:
          {{- toYaml . | nindent 10 }}
        {{- end }}
      spec:
        accessModes:
          {{- toYaml $e.accessModes | nindent 10 }}
        {{- if $e.storageClassName }}
        storageClassName: {{ $e.storageClassName | quote }}
        {{- end }}
        volumeMode: Filesystem
        resources:
          requests:
            storage: {{ $size }}
  {{- else if eq $v.cacheVolume.kind "hostPath" }}
  hostPath:
    path: {{ required "cacheVolume.hostPath.path is required with cacheVolume.kind hostPath" $v.cacheVolume.hostPath.path | quote }}
    type: {{ $v.cacheVolume.hostPath.type }}
  {{- else }}
  {{- fail (printf "cacheVolume.kind must be emptyDir, ephemeral, hostPath or none, got %q" $v.cacheVolume.kind) }}
  {{- end }}
{{- end }}
{{- end -}}
