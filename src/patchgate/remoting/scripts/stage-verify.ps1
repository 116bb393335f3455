# patchgate-op: stage-verify
# Hashes a staged file ON THE VM, so what is installed is what the candidate names.
# Prints one JSON document: {"Path":"<full path>","Exists":true|false,"Sha256":"<UPPER HEX>"|null}
param(
    [Parameter(Mandatory = $true)][string]$Path
)
$ErrorActionPreference = 'Stop'
if (Test-Path -LiteralPath $Path -PathType Leaf) {
    $full = (Resolve-Path -LiteralPath $Path).ProviderPath
    $hash = (Get-FileHash -LiteralPath $full -Algorithm SHA256).Hash
    [pscustomobject]@{ Path = $full; Exists = $true; Sha256 = $hash } | ConvertTo-Json -Compress
} else {
    [pscustomobject]@{ Path = $Path; Exists = $false; Sha256 = $null } | ConvertTo-Json -Compress
}
