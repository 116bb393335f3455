# patchgate-op: install
# Installs a staged .msu/.cab with DISM's PowerShell cmdlet. With checkpoint cumulative updates, PackagePath is the
# TARGET cumulative update: DISM finds its checkpoints in the same folder (Microsoft, "Catalog checkpoint cumulative
# updates": https://learn.microsoft.com/windows/deployment/update/catalog-checkpoint-cumulative-updates). A folder
# still works but installs every package in it. Uses DISM's PowerShell cmdlet, which works over WinRM where wusa.exe and the WUA installer do not.
# First hashes every staged file ON THE VM and installs nothing unless each one is the approved file, so what
# is installed is what the candidate names, checked in the same pipeline that installs it.
# Never restarts: patchgate restarts the VM itself when RestartNeeded says so, and records it.
# Parameters: PackagePath (file or folder); Sha256 (hashtable: staged file name -> expected SHA-256, hex).
# Prints one JSON document:
#   {"PackagePath":"<path>","RestartNeeded":true|false,"ExitCode":<int>,"Log":["<line>", ...],
#    "Staged":[{"Path":"<full path>","Sha256":"<UPPER HEX>"|null}, ...],
#    "Packages":[{"PackageName":"...","PackageState":"Installed"|"InstallPending"|...,"ReleaseType":"..."}, ...]}
#   (Packages only after a successful install)
# ExitCode: 0 = installed, 3010 = installed and a restart is needed, -2146889721 (0x80091007,
# CRYPT_E_HASH_VALUE) = refused because a staged file is missing or differs, otherwise the exception's HResult;
# on an install failure the script also writes the error record (so the pipeline reports an error).
param(
    [Parameter(Mandatory = $true)][string]$PackagePath,
    [Parameter(Mandatory = $true)][hashtable]$Sha256
)
$ErrorActionPreference = 'Stop'
$log = New-Object System.Collections.Generic.List[string]
$staged = New-Object System.Collections.Generic.List[object]
if (Test-Path -LiteralPath $PackagePath -PathType Container) {
    $folder = $PackagePath
} else {
    $folder = [System.IO.Path]::GetDirectoryName($PackagePath)  # Split-Path -LiteralPath -Parent fails on 5.1 (PowerShell/PowerShell#8751)
}
$intact = $true
foreach ($name in @($Sha256.Keys | Sort-Object)) {
    $file = Join-Path -Path $folder -ChildPath $name
    $hash = $null
    if (Test-Path -LiteralPath $file -PathType Leaf) {
        $file = (Resolve-Path -LiteralPath $file).ProviderPath
        $hash = (Get-FileHash -LiteralPath $file -Algorithm SHA256).Hash
    }
    $staged.Add([pscustomobject]@{ Path = $file; Sha256 = $hash })
    if ($null -eq $hash -or $hash -ne ([string]$Sha256[$name]).ToUpperInvariant()) { $intact = $false }
}
if (-not $intact) {
    $log.Add('Refused: a staged file is missing or is not the approved file (SHA-256); nothing was installed')
    [pscustomobject]@{ PackagePath = $PackagePath; RestartNeeded = $false; ExitCode = -2146889721; Log = @($log);
                       Staged = @($staged) } | ConvertTo-Json -Compress -Depth 3
    return
}
$dismLog = Join-Path $env:TEMP ('patchgate-dism-{0}.log' -f [guid]::NewGuid())
try {
    $started = Get-Date
    $result = Add-WindowsPackage -Online -PackagePath $PackagePath -NoRestart -LogPath $dismLog -LogLevel Errors -WarningAction SilentlyContinue
    $restart = [bool]$result.RestartNeeded
    $log.Add("Add-WindowsPackage completed; RestartNeeded=$restart")
    $exitCode = 0
    if ($restart) { $exitCode = 3010 }
    # What the install did on the VM: the servicing state of the packages it touched. Installed = in effect now
    # (a hotpatch went in hot); InstallPending = waits for a restart. Selected by state/InstallTime, since package
    # names do not carry the KB [U]. https://learn.microsoft.com/powershell/module/dism/get-windowspackage
    $packages = @()
    try {
        $packages = @(Get-WindowsPackage -Online | Where-Object {
                $_.PackageState -eq 'InstallPending' -or ($null -ne $_.InstallTime -and $_.InstallTime -ge $started) } |
            ForEach-Object { [pscustomobject]@{ PackageName = $_.PackageName; PackageState = "$($_.PackageState)";
                                                ReleaseType = "$($_.ReleaseType)" } })
    } catch { $log.Add("Get-WindowsPackage -Online failed: $($_.Exception.Message)") }
    [pscustomobject]@{ PackagePath = $PackagePath; RestartNeeded = $restart; ExitCode = $exitCode; Log = @($log);
                       Staged = @($staged); Packages = @($packages) } | ConvertTo-Json -Compress -Depth 3
} catch {
    $failure = $_
    $log.Add($failure.Exception.Message)
    if (Test-Path -LiteralPath $dismLog) {
        Get-Content -LiteralPath $dismLog -Tail 20 | ForEach-Object { $log.Add([string]$_) }
    }
    [pscustomobject]@{ PackagePath = $PackagePath; RestartNeeded = $false; ExitCode = $failure.Exception.HResult;
                       Log = @($log); Staged = @($staged) } | ConvertTo-Json -Compress -Depth 3
    Write-Error -ErrorRecord $failure -ErrorAction Continue
}
