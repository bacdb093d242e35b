{{/*
Helpers shared by the chart's own templates and by the sidecar templates in
_sidecar.tpl. Every helper here reads only .Values and .Release (plus .Chart
and .Capabilities when they are there), so they work the same when an
application's chart includes them with
  (dict "Values" .Values.strata "Release" .Release "Capabilities" .Capabilities)
*/}}

{{/* The base name of everything this release creates for strata: 63 characters at most. */}}
{{- define "strata.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := .Values.nameOverride | default "strata" -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A name derived from the fullname: (list . "suffix"). */}}
{{- define "strata.childName" -}}
{{- $ctx := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- printf "%s-%s" (include "strata.fullname" $ctx | trunc (int (sub 62 (len $suffix)))) $suffix | trimSuffix "-" -}}
{{- end -}}

{{/* The example upstream pool's StatefulSet and headless Service (upstreamPool). */}}
{{- define "strata.upstreamPoolName" -}}
{{- include "strata.childName" (list . "memcached") -}}
{{- end -}}

{{/* The membership entry that finds the example upstream pool's pods: dnssrv+ (SRV records of its port named memcache) or dns+ (A records, with its port). */}}
{{- define "strata.upstreamPoolEntry" -}}
{{- $p := .Values.upstreamPool -}}
{{- $fqdn := printf "%s.%s.svc.%s" (include "strata.upstreamPoolName" .) .Release.Namespace $p.clusterDomain -}}
{{- if eq $p.discovery "dns" -}}
{{- printf "dns+%s:%d" $fqdn (int $p.port) -}}
{{- else -}}
{{- printf "dnssrv+_memcache._tcp.%s" $fqdn -}}
{{- end -}}
{{- end -}}

{{/* The strata config ConfigMap's name. */}}
{{- define "strata.configMapName" -}}
{{- include "strata.childName" (list . "config") -}}
{{- end -}}

{{/* The version shown in labels: the image tag (image.tag defaults to the chart's appVersion). */}}
{{- define "strata.version" -}}
{{- .Values.image.tag | toString | trunc 63 | trimSuffix "-" | replace "+" "_" -}}
{{- end -}}

{{/* The image reference: repository:tag, or repository@digest. */}}
{{- define "strata.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (required "image.tag or image.digest is required" $img.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* The labels that identify this release's strata objects. */}}
{{- define "strata.selectorLabels" -}}
app.kubernetes.io/name: strata
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{/* Labels common to every object the chart creates. */}}
{{- define "strata.labels" -}}
{{ include "strata.selectorLabels" . }}
{{- with include "strata.version" . }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service | default "Helm" | quote }}
app.kubernetes.io/part-of: strata
{{- if .Chart }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
{{- end }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Sizes and durations. strata reads sizes as a whole number with an optional
binary unit (B, KiB, MiB, GiB, TiB; k, m, g, t and K, M, G, T, KB, MB, GB, TB
are binary too) and durations as a whole number with ms, s, m, h or d (bare:
seconds), the rules of common/units.h.
*/}}

{{/* strata.bytes (dict "value" V "what" "config.tiers.ram.size"): the size in bytes, as text. */}}
{{- define "strata.bytes" -}}
{{- $s := .value -}}
{{- if or (kindIs "float64" $s) (kindIs "int" $s) (kindIs "int64" $s) }}{{ $s = int64 $s }}{{ end -}}
{{- $s = trim (toString $s) -}}
{{- $num := regexFind "^[0-9]+" $s -}}
{{- $unit := trim (trimPrefix $num $s) -}}
{{- $KiB := 1024 -}}
{{- $MiB := mul 1024 1024 -}}
{{- $GiB := mul $MiB 1024 -}}
{{- $TiB := mul $GiB 1024 -}}
{{- $units := dict "" 1 "B" 1 "k" $KiB "K" $KiB "KB" $KiB "KiB" $KiB "m" $MiB "M" $MiB "MB" $MiB "MiB" $MiB "g" $GiB "G" $GiB "GB" $GiB "GiB" $GiB "t" $TiB "T" $TiB "TB" $TiB "TiB" $TiB -}}
{{- if or (not $num) (not (hasKey $units $unit)) -}}
{{- fail (printf "%s: expected a size like 256MiB, got %q" .what $s) -}}
{{- end -}}
{{- mul (int64 $num) (get $units $unit) -}}
{{- end -}}

{{/* strata.seconds (dict "value" V "what" "config.server.drain_timeout"): the duration in whole seconds, rounded up. */}}
{{- define "strata.seconds" -}}
{{- $s := .value -}}
{{- if or (kindIs "float64" $s) (kindIs "int" $s) (kindIs "int64" $s) }}{{ $s = int64 $s }}{{ end -}}
{{- $s = trim (toString $s) -}}
{{- $num := regexFind "^[0-9]+" $s -}}
{{- $unit := trim (trimPrefix $num $s) -}}
{{- $ms := dict "ms" 1 "" 1000 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 -}}
{{- if or (not $num) (not (hasKey $ms $unit)) -}}
{{- fail (printf "%s: expected a duration like 10s or 1500ms, got %q" .what $s) -}}
{{- end -}}
{{- div (add (mul (int64 $num) (get $ms $unit)) 999) 1000 -}}
{{- end -}}

{{/*
strata.quantityBytes (dict "value" V "what" "resources.limits.memory"): a
Kubernetes quantity (512Mi, 1Gi, 1G, 1.5Gi, 1073741824) in bytes, rounded up.
*/}}
{{- define "strata.quantityBytes" -}}
{{- $s := .value -}}
{{- if or (kindIs "float64" $s) (kindIs "int" $s) (kindIs "int64" $s) }}{{ $s = int64 $s }}{{ end -}}
{{- $s = trim (toString $s) -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $s -}}
{{- $unit := trimPrefix $num $s -}}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "P" 1000000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 -}}
{{- if or (not $num) (not (hasKey $units $unit)) -}}
{{- fail (printf "%s: expected a Kubernetes quantity like 512Mi or 2Gi, got %q" .what $s) -}}
{{- end -}}
{{- if contains "." $num -}}
{{- ceil (mulf (float64 $num) (float64 (get $units $unit))) | int64 -}}
{{- else -}}
{{- mul (int64 $num) (get $units $unit) -}}
{{- end -}}
{{- end -}}

{{/* strata.mib: bytes (text or number) rounded up to whole MiB, as a quantity "123Mi". */}}
{{- define "strata.mib" -}}
{{- $b := int64 . -}}
{{- printf "%dMi" (div (add $b 1048575) 1048576) -}}
{{- end -}}

{{/* Whether the SSD tier is on: "true" or "". */}}
{{- define "strata.ssdEnabled" -}}
{{- if ne .Values.cacheVolume.kind "none" }}true{{ end -}}
{{- end -}}

{{/* The RAM tier's size in bytes (strata's default, 256MiB, when unset). */}}
{{- define "strata.ramBytes" -}}
{{- $ram := dig "tiers" "ram" "size" "256MiB" (.Values.config | default dict) -}}
{{- include "strata.bytes" (dict "value" $ram "what" "config.tiers.ram.size") -}}
{{- end -}}

{{/* The SSD tier's size in bytes; 0 without one. */}}
{{- define "strata.ssdBytes" -}}
{{- if include "strata.ssdEnabled" . -}}
{{- $ssd := dig "tiers" "ssd" "size" "" (.Values.config | default dict) -}}
{{- if not $ssd -}}
{{- fail (printf "config.tiers.ssd.size is required with cacheVolume.kind %q (or set cacheVolume.kind to none for a RAM-only cache)" .Values.cacheVolume.kind) -}}
{{- end -}}
{{- include "strata.bytes" (dict "value" $ssd "what" "config.tiers.ssd.size") -}}
{{- else -}}
0
{{- end -}}
{{- end -}}

{{/*
The worker threads strata runs: config.server.workers, or with 0 (one per
usable CPU) the CPU limit rounded up. Fails when neither says.
*/}}
{{- define "strata.workers" -}}
{{- $w := dig "server" "workers" 0 (.Values.config | default dict) | int64 -}}
{{- if gt $w 0 -}}
{{- $w -}}
{{- else -}}
{{- $cpu := dig "limits" "cpu" "" (.Values.resources | default dict) -}}
{{- if not $cpu -}}
{{- fail "config.server.workers is 0 (one worker per CPU) and resources.limits.cpu is unset: the memory limit counts the workers; set one of them" -}}
{{- end -}}
{{- $cpu = toString $cpu -}}
{{- if hasSuffix "m" $cpu -}}
{{- div (add (trimSuffix "m" $cpu | int64) 999) 1000 | max 1 -}}
{{- else -}}
{{- ceil (float64 $cpu) | int64 | max 1 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The memory the strata container needs, in bytes (README "Memory"):
    24 MiB                                  binary, threads, per-worker pools
  + 1.2 x tiers.ram.size                    items, index share, allocator slack
  + server.max_connection_memory            what connections hold (auto:
                                            RAM tier / 8, 32 MiB..1 GiB)
  + 2 x workers x tiers.ram.max_item_size   one step per worker past that cap,
                                            and one value it streams uncharged
  + 2 KiB x server.max_connections          each connection's own structures
  + with an SSD tier:
    3 x tiers.ssd.region_size               two region buffers and a reclaim's read-back
  + tiers.ssd.size / sizing.ssdAvgItemSize x 14 B   the SSD index
  + 2 x tiers.ram.max_item_size             large items queued for the SSD
strata trims its heap when its RSS passes ram x 1.125 + 8 MiB. Measured
peaks are in the README (issue 21).
*/}}
{{- define "strata.memoryBytes" -}}
{{- $cfg := .Values.config | default dict -}}
{{- $MiB := 1048576 -}}
{{- $ram := include "strata.ramBytes" . | int64 -}}
{{- $ssd := include "strata.ssdBytes" . | int64 -}}
{{- $conn := dig "server" "max_connection_memory" "auto" $cfg -}}
{{- if eq (toString $conn) "auto" -}}
{{- $conn = div $ram 8 | max (mul 32 $MiB) | min (mul 1024 $MiB) -}}
{{- else -}}
{{- $conn = include "strata.bytes" (dict "value" $conn "what" "config.server.max_connection_memory") | int64 -}}
{{- end -}}
{{- $item := include "strata.bytes" (dict "value" (dig "tiers" "ram" "max_item_size" "1MiB" $cfg) "what" "config.tiers.ram.max_item_size") | int64 -}}
{{- $conns := dig "server" "max_connections" 4096 $cfg | int64 -}}
{{- $workers := include "strata.workers" . | int64 -}}
{{- $need := add (mul 24 $MiB) (div (mul $ram 6) 5) $conn (mul 2 $workers $item) (mul $conns 2048) -}}
{{- if gt $ssd 0 -}}
{{- $region := include "strata.bytes" (dict "value" (dig "tiers" "ssd" "region_size" "16MiB" $cfg) "what" "config.tiers.ssd.region_size") | int64 -}}
{{- $avg := include "strata.bytes" (dict "value" .Values.sizing.ssdAvgItemSize "what" "sizing.ssdAvgItemSize") | int64 -}}
{{- if le $avg 0 }}{{ fail "sizing.ssdAvgItemSize must be at least 1 byte" }}{{ end -}}
{{- $need = add $need (mul 3 $region) (mul (div $ssd $avg) 14) (mul 2 $item) -}}
{{- end -}}
{{- $need -}}
{{- end -}}

{{/*
The cache volume's size as a Kubernetes quantity: cacheVolume.size, or the SSD
tier's size + 64 MiB. Fails when cacheVolume.size is smaller than the tier.
*/}}
{{- define "strata.cacheVolumeSize" -}}
{{- $ssd := include "strata.ssdBytes" . | int64 -}}
{{- if .Values.cacheVolume.size -}}
{{- $vol := include "strata.quantityBytes" (dict "value" .Values.cacheVolume.size "what" "cacheVolume.size") | int64 -}}
{{- if lt $vol $ssd -}}
{{- fail (printf "cacheVolume.size (%v) is smaller than config.tiers.ssd.size (%v, %d bytes): strata preallocates the whole tier" .Values.cacheVolume.size .Values.config.tiers.ssd.size $ssd) -}}
{{- end -}}
{{- .Values.cacheVolume.size -}}
{{- else -}}
{{- include "strata.mib" (add $ssd (mul 64 1048576)) -}}
{{- end -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: the value, or with "auto"
  max(60, drain_timeout + 5 s per GiB of RAM tier (written to SSD on
  SIGTERM) + 30 s for the application's own shutdown and margin).
*/}}
{{- define "strata.recommendedGracePeriod" -}}
{{- $drain := include "strata.seconds" (dict "value" (dig "server" "drain_timeout" "10s" (.Values.config | default dict)) "what" "config.server.drain_timeout") | int64 -}}
{{- $flush := 0 -}}
{{- if and (include "strata.ssdEnabled" .) (ne (toString (dig "tiers" "ssd" "demote_on_shutdown" true (.Values.config | default dict))) "false") -}}
{{- $GiB := 1073741824 -}}
{{- $flush = mul 5 (div (add (include "strata.ramBytes" . | int64) (sub $GiB 1)) $GiB) -}}
{{- end -}}
{{- add $drain $flush 30 -}}
{{- end -}}

{{- define "strata.terminationGracePeriodSeconds" -}}
{{- $t := .Values.terminationGracePeriodSeconds -}}
{{- if eq (toString $t) "auto" -}}
{{- max 60 (include "strata.recommendedGracePeriod" . | int64) -}}
{{- else -}}
{{- int64 $t -}}
{{- end -}}
{{- end -}}
