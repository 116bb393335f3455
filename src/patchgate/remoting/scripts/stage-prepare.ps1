# patchgate-op: stage-prepare
# Creates the staging directory (and parents) for candidate packages.
# Prints one JSON document: {"Path":"<full path>","Exists":true}
param(
    [Parameter(Mandatory = $true)][string]$Path
)
$ErrorActionPreference = 'Stop'
$item = New-Item -ItemType Directory -Path $Path -Force
[pscustomobject]@{ Path = $item.FullName; Exists = $true } | ConvertTo-Json -Compress
