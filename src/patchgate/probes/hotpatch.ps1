# patchgate-probe: hotpatch
<#
  Hotpatch enrollment signals on Windows Server 2025, read locally (no single "IsHotpatchEnrolled" cmdlet exists [U]).
  Prints ONE compressed JSON document (schema: docs/probes.md#hotpatch).

  Sources:
  - Win32_DeviceGuard.VirtualizationBasedSecurityStatus (0 off, 1 enabled, 2 running):
    https://learn.microsoft.com/windows/security/hardware-security/enable-virtualization-based-protection-of-code-integrity
  - HotPatchTableSize and TargetingInfo\DynamicInstalled\Hotpatch.<arch> Name/Version:
    https://learn.microsoft.com/windows-server/get-started/enable-hotpatch-azure-edition
    ([V] for WS2022 Azure Edition; [U] that Arc enrollment on WS2025 writes the same values)
  - Arc agent status: azcmagent show -j  https://learn.microsoft.com/azure/azure-arc/servers/azcmagent-show
  - Oct 2025 Arc feature-licensing fix (FeatureManagement\Overrides value 4264695439 = 1, delete
    Subscriptions\DeviceLicensingServiceCommandMutex):
    https://learn.microsoft.com/windows-server/get-started/enable-hotpatch-azure-arc-enabled-servers
    (the mutex value as a health signal is [U])
#>
[CmdletBinding()]
param()
$ErrorActionPreference = 'Stop'

function Get-RegValue([string]$Path, [string]$Name) {
    $item = Get-ItemProperty -LiteralPath $Path -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $item) { return $null }
    return $item.$Name
}

$arch = "$env:PROCESSOR_ARCHITECTURE".ToLowerInvariant()

# 1. VBS running (2) and configured
$dg = Get-CimInstance -Namespace 'root/Microsoft/Windows/DeviceGuard' -ClassName Win32_DeviceGuard -ErrorAction SilentlyContinue
$vbsStatus = $null
if ($null -ne $dg -and $null -ne $dg.VirtualizationBasedSecurityStatus) { $vbsStatus = [int]$dg.VirtualizationBasedSecurityStatus }
$vbsConfigured = Get-RegValue 'HKLM:\SYSTEM\CurrentControlSet\Control\DeviceGuard' 'EnableVirtualizationBasedSecurity'
if ($null -ne $vbsConfigured) { $vbsConfigured = [int]$vbsConfigured }

# 2. Hotpatch table and enrollment package
$tableSize = Get-RegValue 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management' 'HotPatchTableSize'
if ($null -ne $tableSize) { $tableSize = [long]$tableSize }
$pkgKey = "HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Update\TargetingInfo\DynamicInstalled\Hotpatch.$arch"
$package = $null
$pkg = Get-ItemProperty -LiteralPath $pkgKey -ErrorAction SilentlyContinue
if ($null -ne $pkg) {
    $package = [pscustomobject]@{ Name = [string]$pkg.Name; Version = [string]$pkg.Version }
}

# 3. Arc agent and its services (hpatchmon presence on WS2025 is [U]; GCArcService name is [U]; newer agents also
#    run arcproxy [U, reported by a review of the agent's services])
$arcServices = @(Get-Service -Name 'himds', 'GCArcService', 'ExtensionService', 'arcproxy', 'hpatchmon' -ErrorAction SilentlyContinue |
    ForEach-Object { [pscustomobject]@{ Name = $_.Name; Status = "$($_.Status)"; StartType = "$($_.StartType)" } })
$azcm = Join-Path $env:ProgramFiles 'AzureConnectedMachineAgent\azcmagent.exe'
$arcInstalled = Test-Path -LiteralPath $azcm
$arcStatus = $null
if ($arcInstalled) {
    # Windows PowerShell 5.1 turns native stderr into terminating errors under 'Stop': relax it for this call.
    $ErrorActionPreference = 'Continue'
    try {
        $raw = (& $azcm show -j 2>$null) -join "`n"
        if ($raw) { $arcStatus = [string](ConvertFrom-Json -InputObject $raw).status }   # key name 'status' [U]
    } catch { $arcStatus = $null }
    $ErrorActionPreference = 'Stop'
}

# 4. Oct 2025 licensing override and mutex
$override = Get-RegValue 'HKLM:\SYSTEM\CurrentControlSet\Policies\Microsoft\FeatureManagement\Overrides' '4264695439'
if ($null -ne $override) { $override = [long]$override }
$mutex = $null -ne (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Subscriptions' `
        -Name 'DeviceLicensingServiceCommandMutex' -ErrorAction SilentlyContinue)

$doc = [pscustomobject]@{
    Architecture                = $arch
    VbsStatus                   = $vbsStatus
    VbsConfigured               = $vbsConfigured
    HotPatchTableSize           = $tableSize
    Package                     = $package
    ArcAgentInstalled           = [bool]$arcInstalled
    ArcAgentStatus              = $arcStatus
    ArcServices                 = $arcServices
    FeatureLicensingOverride    = $override
    DeviceLicensingMutexPresent = [bool]$mutex
}
ConvertTo-Json -InputObject $doc -Depth 4 -Compress
