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
#>
[CmdletBinding()]
param()
$ErrorActionPreference = 'Stop'

$cbs = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing'

$pfro = $null
$value = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' `
    -Name 'PendingFileRenameOperations' -ErrorAction SilentlyContinue
if ($null -ne $value) { $pfro = [string[]]@($value.PendingFileRenameOperations) }

$doc = [pscustomobject]@{
    CbsRebootPending            = Test-Path -LiteralPath "$cbs\RebootPending"
    CbsRebootInProgress         = Test-Path -LiteralPath "$cbs\RebootInProgress"
    CbsPackagesPending          = Test-Path -LiteralPath "$cbs\PackagesPending"
    WuRebootRequired            = Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired'
    WuaRebootRequired           = $null  # not readable remotely (see above)
    PendingFileRenameOperations = $pfro
}
ConvertTo-Json -InputObject $doc -Depth 3 -Compress
