# patchgate-probe: updates
<#
  OS build identity, installed KBs and last boot. Prints ONE compressed JSON document (schema: docs/probes.md#updates).
  KB5070881 and KB5070893 both report 26100.6905: only the installed KB tells them apart.

  Sources:
  - CurrentBuild/UBR/DisplayVersion/EditionID/ProductName/InstallationType under
    HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion (Learn hotpatch page; release-info)
  - Get-HotFix (Win32_QuickFixEngineering): https://learn.microsoft.com/powershell/module/microsoft.powershell.management/get-hotfix
  - Win32_OperatingSystem.LastBootUpTime: https://learn.microsoft.com/windows/win32/cimwin32prov/win32-operatingsystem
  - The Description text Get-HotFix shows for a hotpatch is [U]; match on HotFixID only.
#>
[CmdletBinding()]
param()
$ErrorActionPreference = 'Stop'

$cv = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
$os = Get-CimInstance -ClassName Win32_OperatingSystem

$hotfixes = @(Get-HotFix -ErrorAction SilentlyContinue | Sort-Object -Property HotFixID | ForEach-Object {
        $on = $null
        # Get-HotFix parses Win32_QuickFixEngineering.InstalledOn; some entries hold text it cannot parse.
        try { if ($_.InstalledOn) { $on = ([datetime]$_.InstalledOn).ToString('yyyy-MM-dd') } } catch { $on = $null }
        [pscustomobject]@{ HotFixID = $_.HotFixID; Description = $_.Description; InstalledOn = $on; InstalledBy = $_.InstalledBy }
    })

$ubr = $null; if ($null -ne $cv.UBR) { $ubr = [int]$cv.UBR }
$doc = [pscustomobject]@{
    CurrentBuild     = [string]$cv.CurrentBuild
    UBR              = $ubr
    DisplayVersion   = $cv.DisplayVersion
    EditionID        = $cv.EditionID
    ProductName      = $cv.ProductName
    InstallationType = $cv.InstallationType
    HotFixes         = $hotfixes
    LastBootUpTime   = $os.LastBootUpTime.ToUniversalTime().ToString('o')
}
ConvertTo-Json -InputObject $doc -Depth 3 -Compress
