# patchgate-probe: wsus
<#
  WSUS server role: feature state, WsusPool app pool, setup values, and the subscription's last synchronisation.
  Safe on hosts without the role (RoleInstalled=false, Api=null). Prints ONE compressed JSON document
  (schema: docs/probes.md#wsus).

  Sources:
  - Get-WsusServer: https://learn.microsoft.com/powershell/module/updateservices/get-wsusserver
  - ISynchronizationInfo / SynchronizationResult / SynchronizationStatus:
    https://learn.microsoft.com/previous-versions/windows/desktop/aa354313(v=vs.85)
  - appcmd list apppool /text:state (fallback): https://learn.microsoft.com/iis/get-started/getting-started-with-iis/getting-started-with-appcmdexe
  - WsusPool app pool (WebAdministration Get-WebAppPoolState), MUUrl:
    https://learn.microsoft.com/troubleshoot/mem/configmgr/update-management/troubleshoot-wsus-import-sync-issues
  - HKLM:\SOFTWARE\Microsoft\Update Services\Server\Setup PortNumber/UsingSSL/ContentDir [U]
  - Whether ErrorText is blanked after the CVE-2025-59287 fix is [U]; compare Result and EndTime, not ErrorText.
#>
[CmdletBinding()]
param()
$ErrorActionPreference = 'Stop'

function ConvertTo-IsoUtc($Value, [switch]$AssumeUtc) {
    if ($null -eq $Value) { return $null }
    $d = [datetime]$Value
    if ($d -eq [datetime]::MinValue -or $d -eq [datetime]::MaxValue) { return $null }
    # The WSUS API reports UTC times; some come back with Kind=Unspecified [U]: don't shift those by the local offset.
    if ($AssumeUtc -and $d.Kind -eq [DateTimeKind]::Unspecified) { $d = [datetime]::SpecifyKind($d, [DateTimeKind]::Utc) }
    return $d.ToUniversalTime().ToString('o')
}

$features = @()
if (Get-Command -Name Get-WindowsFeature -ErrorAction SilentlyContinue) {
    $features = @(Get-WindowsFeature -Name 'UpdateServices*' -ErrorAction SilentlyContinue |
        ForEach-Object { [pscustomobject]@{ Name = $_.Name; Installed = [bool]$_.Installed } })
}
$roleInstalled = [bool](@($features | Where-Object { $_.Name -eq 'UpdateServices' -and $_.Installed }).Count)

$setup = $null
$appPool = $null
$api = $null
if ($roleInstalled) {
    $s = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Update Services\Server\Setup' -ErrorAction SilentlyContinue
    if ($null -ne $s) {
        $port = $null; if ($null -ne $s.PortNumber) { $port = [int]$s.PortNumber }
        $ssl = $null; if ($null -ne $s.UsingSSL) { $ssl = [bool][int]$s.UsingSSL }
        $setup = [pscustomobject]@{ PortNumber = $port; UsingSSL = $ssl; ContentDir = $s.ContentDir }
    }
    # WebAdministration is known to fail over remoting; appcmd reads the same IIS configuration. A read that
    # fails both ways is reported with its error (a probe error, inconclusive), never as "WsusPool not started".
    $appPoolError = $null
    try {
        Import-Module WebAdministration -ErrorAction Stop
        $appPool = [string](Get-WebAppPoolState -Name 'WsusPool').Value
    } catch {
        $moduleError = $_.Exception.Message
        $appcmd = Join-Path $env:windir 'System32\inetsrv\appcmd.exe'
        $state = $null
        if (Test-Path -LiteralPath $appcmd) { $state = & $appcmd list apppool 'WsusPool' '/text:state' 2>$null }
        if ($LASTEXITCODE -eq 0 -and $state) { $appPool = [string]$state }
        else { $appPoolError = "WebAdministration: $moduleError; appcmd: exit $LASTEXITCODE" }
    }

    $available = $false; $apiError = $null; $muUrl = $null; $status = $null; $lastTime = $null; $last = $null
    try {
        $w = Get-WsusServer
        $sub = $w.GetSubscription()
        $status = "$($sub.GetSynchronizationStatus())"
        $lastTime = ConvertTo-IsoUtc $sub.LastSynchronizationTime -AssumeUtc
        $muUrl = "$($w.GetConfiguration().MUUrl)"
        $i = $sub.GetLastSynchronizationInfo()
        if ($null -ne $i) {
            $errCount = $null; if ($null -ne $i.UpdateErrors) { $errCount = [int]$i.UpdateErrors.Count }
            $last = [pscustomobject]@{
                StartTime        = ConvertTo-IsoUtc $i.StartTime -AssumeUtc
                EndTime          = ConvertTo-IsoUtc $i.EndTime -AssumeUtc
                Result           = "$($i.Result)"
                Error            = "$($i.Error)"
                ErrorText        = $i.ErrorText
                StartedManually  = [bool]$i.StartedManually
                UpdateErrorCount = $errCount
                Id               = "$($i.Id)"
            }
        }
        $available = $true
    } catch {
        $apiError = $_.Exception.Message
    }
    $api = [pscustomobject]@{
        Available = $available; Error = $apiError; MUUrl = $muUrl; SyncStatus = $status
        LastSynchronizationTime = $lastTime; LastSync = $last
    }
}

$doc = [pscustomobject]@{
    RoleInstalled = $roleInstalled
    Features      = $features
    AppPoolState  = $appPool
    AppPoolError  = $appPoolError
    Setup         = $setup
    Api           = $api
}
ConvertTo-Json -InputObject $doc -Depth 5 -Compress
