# patchgate-probe: reboot
<#
  Reboot-pending signals. Prints ONE compressed JSON document (schema: docs/probes.md#reboot).
  PendingFileRenameOperations is a VALUE of Session Manager, not a key (Test-Path on it is a common bug); it is
  noisy (AV, installers), so it is reported as its value for comparison with the baseline, never required empty.

  WuaRebootRequired is always null: ISystemInformation (Microsoft.Update.SystemInfo) is not among the WUA
  interfaces that can be used from a remote computer, so over WinRM it never answers; the probe no longer asks.
  Reading it would need a scheduled task running as SYSTEM on the VM, which patchgate does not install.

  Sources:
  - Using WUA from a remote computer: https://learn.microsoft.com/windows/win32/wua_sdk/using-wua-from-a-remote-computer
  - CBS RebootPending / WU Auto Update\RebootRequired keys as used by common scripts (Exchange HealthChecker
    "ServerPendingRebootCheck"); CBS RebootInProgress and PackagesPending are [U].
  - Restart evidence (docs/invariants.md, hotpatch.no_restart): PrefetchParameters\BootId, one more at every boot
    [U]; System events 6005/6006/6008 (EventLog), 1074 (User32), 12/13 (Kernel-General: OS start/shutdown) since
    -Since, https://learn.microsoft.com/troubleshoot/windows-server/performance/use-event-logs-to-find-restarts [U]
#>
[CmdletBinding()]
param([string]$Since)
$ErrorActionPreference = 'Stop'

$cbs = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing'

$pfro = $null
$value = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' `
    -Name 'PendingFileRenameOperations' -ErrorAction SilentlyContinue
if ($null -ne $value) { $pfro = [string[]]@($value.PendingFileRenameOperations) }

$bootId = $null
try {
    $bootId = [int64](Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management\PrefetchParameters' `
        -Name 'BootId' -ErrorAction Stop).BootId
} catch { $bootId = $null }
$bootEvents = @()
if ($Since) {
    $start = [datetime]::Parse($Since, [Globalization.CultureInfo]::InvariantCulture,
        [Globalization.DateTimeStyles]::RoundtripKind).ToLocalTime()
    $filters = @(
        @{ LogName = 'System'; ProviderName = 'EventLog'; Id = 6005, 6006, 6008; StartTime = $start },
        @{ LogName = 'System'; ProviderName = 'User32'; Id = 1074; StartTime = $start },
        @{ LogName = 'System'; ProviderName = 'Microsoft-Windows-Kernel-General'; Id = 12, 13; StartTime = $start })
    $bootEvents = @(Get-WinEvent -FilterHashtable $filters -ErrorAction SilentlyContinue | ForEach-Object {
            [pscustomobject]@{ Id = $_.Id; ProviderName = $_.ProviderName; TimeCreated = $_.TimeCreated.ToUniversalTime().ToString('o') }
        })
}

$doc = [pscustomobject]@{
    CbsRebootPending            = Test-Path -LiteralPath "$cbs\RebootPending"
    CbsRebootInProgress         = Test-Path -LiteralPath "$cbs\RebootInProgress"
    CbsPackagesPending          = Test-Path -LiteralPath "$cbs\PackagesPending"
    WuRebootRequired            = Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired'
    WuaRebootRequired           = $null  # not readable remotely (see above)
    PendingFileRenameOperations = $pfro
    BootId                      = $bootId
    BootEvents                  = $bootEvents
}
ConvertTo-Json -InputObject $doc -Depth 3 -Compress
