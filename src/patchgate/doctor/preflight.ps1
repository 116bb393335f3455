# patchgate-op: preflight
<#
  What patchgate must know about a VM before it installs anything there, and what the [U] assumptions of the
  probes look like on this VM. Reads only; prints ONE compressed JSON document (schema: docs/doctor.md#facts).

  Sources:
  - LanguageMode: https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_language_modes
  - Filtered (non-admin) tokens of local accounts over the network, LocalAccountTokenFilterPolicy:
    https://learn.microsoft.com/windows/win32/wmisdk/user-account-control-and-wmi
  - MaxMemoryPerShellMB (schema default 1024): https://learn.microsoft.com/openspecs/windows_protocols/ms-wsmv/7ffb4acd-cf01-4fbe-9e48-7746f5001957
  - MaxEnvelopeSizekb: https://learn.microsoft.com/openspecs/windows_protocols/ms-wsman/8a6b1967-ff8e-4756-9a3b-890b4b439847
  - Get-WindowsPackage PackageState (InstallPending / UninstallPending):
    https://learn.microsoft.com/windows-hardware/manufacture/desktop/dism/dismpackagefeaturestate-enumeration
  - Reboot-pending keys: as in reboot.ps1 (docs/probes.md#reboot).
  - BootId under Memory Management\PrefetchParameters: [U] (the twin models it; a real lab shows it here).
#>
[CmdletBinding()]
param()
$ErrorActionPreference = 'Stop'

function Get-Value([string]$Path, [string]$Name) {
    $item = Get-ItemProperty -LiteralPath $Path -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $item) { return $null }
    return $item.$Name
}
function Try-Read([scriptblock]$Block) {
    try { return & $Block } catch { return $null }
}

# In ConstrainedLanguage the .NET calls below are refused; each is read on its own so the document still prints
# and the language mode check says why.
$identity = Try-Read { [Security.Principal.WindowsIdentity]::GetCurrent() }
$isAdmin = Try-Read {
    (New-Object Security.Principal.WindowsPrincipal($identity)).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}
$nt = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
$cbs = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing'
$drive = Try-Read { Get-CimInstance -ClassName Win32_LogicalDisk -Filter "DeviceID='$($env:SystemDrive)'" }
$pending = Try-Read {
    @(Get-WindowsPackage -Online | Where-Object { "$($_.PackageState)" -in 'InstallPending', 'UninstallPending' } |
      ForEach-Object { "$($_.PackageName)" })
}
$webAdmin = try {
    Import-Module WebAdministration -ErrorAction Stop
    $null = @(Get-ChildItem -Path 'IIS:\AppPools' -ErrorAction Stop)
    'ok'
} catch { "$($_.Exception.GetType().Name): $($_.Exception.Message)" }

$doc = [pscustomobject]@{
    ComputerName                  = $env:COMPUTERNAME
    LanguageMode                  = "$($ExecutionContext.SessionState.LanguageMode)"
    UserName                      = if ($identity) { $identity.Name } else { "$env:USERDOMAIN\$env:USERNAME" }
    IsAdministrator               = $isAdmin
    LocalAccountTokenFilterPolicy = Get-Value 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System' 'LocalAccountTokenFilterPolicy'
    MaxMemoryPerShellMB           = Try-Read { [long](Get-Item -Path 'WSMan:\localhost\Shell\MaxMemoryPerShellMB').Value }
    MaxEnvelopeSizekb             = Try-Read { [long](Get-Item -Path 'WSMan:\localhost\MaxEnvelopeSizekb').Value }
    SystemDrive                   = $env:SystemDrive
    FreeBytes                     = if ($drive) { [long]$drive.FreeSpace } else { $null }
    PendingPackages               = $pending
    CbsRebootPending              = Test-Path -LiteralPath "$cbs\RebootPending"
    WuRebootRequired              = Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired'
    InstallationType              = Get-Value $nt 'InstallationType'
    EditionID                     = Get-Value $nt 'EditionID'
    CurrentBuild                  = Get-Value $nt 'CurrentBuild'
    UtcNow                        = (Get-Date).ToUniversalTime().ToString('o')
    BootId                        = Get-Value 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management\PrefetchParameters' 'BootId'
    WebAdministration             = $webAdmin
}
ConvertTo-Json -InputObject $doc -Depth 3 -Compress
