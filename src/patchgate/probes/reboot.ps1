# patchgate-probe: reboot
<#
  Reboot-pending signals. Prints ONE compressed JSON document (schema: docs/probes.md#reboot).
  PendingFileRenameOperations is a VALUE of Session Manager, not a key (Test-Path on it is a common bug); it is
  noisy (AV, installers), so it is reported as its value for comparison with the baseline, never required empty.

  Sources:
  - ISystemInformation.RebootRequired: https://learn.microsoft.com/windows/win32/api/wuapi/nf-wuapi-isysteminformation-get_rebootrequired
  - CBS RebootPending / WU Auto Update\RebootRequired keys as used by common scripts (Exchange HealthChecker
    "ServerPendingRebootCheck"); CBS RebootInProgress and PackagesPending are [U].
#>
[CmdletBinding()]
param()
$ErrorActionPreference = 'Stop'

$cbs = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing'
$wua = $null
try { $wua = [bool](New-Object -ComObject 'Microsoft.Update.SystemInfo').RebootRequired } catch { $wua = $null }

$pfro = $null
$value = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' `
    -Name 'PendingFileRenameOperations' -ErrorAction SilentlyContinue
if ($null -ne $value) { $pfro = [string[]]@($value.PendingFileRenameOperations) }

$doc = [pscustomobject]@{
    CbsRebootPending            = Test-Path -LiteralPath "$cbs\RebootPending"
    CbsRebootInProgress         = Test-Path -LiteralPath "$cbs\RebootInProgress"
    CbsPackagesPending          = Test-Path -LiteralPath "$cbs\PackagesPending"
    WuRebootRequired            = Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired'
    WuaRebootRequired           = $wua
    PendingFileRenameOperations = $pfro
}
ConvertTo-Json -InputObject $doc -Depth 3 -Compress
