# patchgate-op: install
# Installs a staged .msu/.cab (or a folder holding a checkpoint cumulative update and its prerequisites)
# with DISM's PowerShell cmdlet, which works over WinRM where wusa.exe and the WUA installer do not.
# Never restarts: patchgate restarts the VM itself when RestartNeeded says so, and records it.
# Prints one JSON document:
#   {"PackagePath":"<path>","RestartNeeded":true|false,"ExitCode":<int>,"Log":["<line>", ...]}
# ExitCode: 0 = installed, 3010 = installed and a restart is needed, otherwise the exception's HResult;
# on failure the script also writes the error record (so the pipeline reports an error).
param(
    [Parameter(Mandatory = $true)][string]$PackagePath
)
$ErrorActionPreference = 'Stop'
$log = New-Object System.Collections.Generic.List[string]
$dismLog = Join-Path $env:TEMP ('patchgate-dism-{0}.log' -f [guid]::NewGuid())
try {
    $result = Add-WindowsPackage -Online -PackagePath $PackagePath -NoRestart -LogPath $dismLog -LogLevel Errors -WarningAction SilentlyContinue
    $restart = [bool]$result.RestartNeeded
    $log.Add("Add-WindowsPackage completed; RestartNeeded=$restart")
    $exitCode = 0
    if ($restart) { $exitCode = 3010 }
    [pscustomobject]@{ PackagePath = $PackagePath; RestartNeeded = $restart; ExitCode = $exitCode; Log = @($log) } |
        ConvertTo-Json -Compress -Depth 3
} catch {
    $failure = $_
    $log.Add($failure.Exception.Message)
    if (Test-Path -LiteralPath $dismLog) {
        Get-Content -LiteralPath $dismLog -Tail 20 | ForEach-Object { $log.Add([string]$_) }
    }
    [pscustomobject]@{ PackagePath = $PackagePath; RestartNeeded = $false; ExitCode = $failure.Exception.HResult; Log = @($log) } |
        ConvertTo-Json -Compress -Depth 3
    Write-Error -ErrorRecord $failure -ErrorAction Continue
}
