# patchgate-probe: events
<#
  Service Control Manager events (System log) and WSUS event 7053 (Application log) since -Since (ISO 8601;
  default: last boot). Prints ONE compressed JSON document (schema: docs/probes.md#events).

  Ids: 7000 failed to start, 7001 dependency failed, 7009/7011 timeouts, 7022 hung starting, 7023 terminated with
  error, 7024 service-specific error, 7026 driver failed, 7031 crashed (recovery taken), 7032 recovery failed,
  7034 crashed (no action), 7040 start type changed, 7045 service installed.
  WSUS 7053 is a CVE-2025-59287 indicator only with all four markers of the SigmaHQ rule (judged by the suite).

  Sources:
  - Get-WinEvent -FilterHashtable ("No events were found" is an error, hence SilentlyContinue):
    https://learn.microsoft.com/powershell/module/microsoft.powershell.diagnostics/get-winevent
  - SCM event texts: netevent message table (code search) [V/3P]; 7053 rule: SigmaHQ
    rules/windows/builtin/application/win_wsus_exploit_cve_2025_59287.yml
  - Which insertion string names the service, per id, from the SCM message templates (netevent.dll):
    7009 "A timeout was reached (%1 milliseconds) while waiting for the %2 service to connect." and
    7011 "A timeout (%1 milliseconds) was reached while waiting for a transaction response from the %2 service."
    put the timeout first (service = Properties[1]); 7032 names the service in %3 (Properties[2]) after the
    corrective action [3P, template text as quoted by the review]; 7026 lists drivers, not a service (none);
    every other id here starts with the service (%1 = Properties[0]).
#>
[CmdletBinding()]
param([string]$Since, [int]$MaxEvents = 1000)
$ErrorActionPreference = 'Stop'

if ($Since) {
    $start = [datetime]::Parse($Since, [Globalization.CultureInfo]::InvariantCulture,
        [Globalization.DateTimeStyles]::RoundtripKind)
} else {
    $start = (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime
}

$scmIds = 7000, 7001, 7009, 7011, 7022, 7023, 7024, 7026, 7031, 7032, 7034, 7040, 7045
$found = @()
$found += @(Get-WinEvent -MaxEvents $MaxEvents -ErrorAction SilentlyContinue -FilterHashtable @{
        LogName = 'System'; ProviderName = 'Service Control Manager'; Id = $scmIds; StartTime = $start })
$found += @(Get-WinEvent -MaxEvents $MaxEvents -ErrorAction SilentlyContinue -FilterHashtable @{
        LogName = 'Application'; ProviderName = 'Windows Server Update Services'; Id = 7053; StartTime = $start })

# event id -> index of the insertion string that names the service (-1: the event names no service)
$serviceIndex = @{ 7009 = 1; 7011 = 1; 7032 = 2; 7026 = -1; 7053 = -1 }

$events = @($found | Sort-Object -Property TimeCreated -Descending | ForEach-Object {
        $svc = $null
        $index = 0
        if ($serviceIndex.ContainsKey([int]$_.Id)) { $index = $serviceIndex[[int]$_.Id] }
        if ($index -ge 0 -and $_.Properties.Count -gt $index) { $svc = [string]$_.Properties[$index].Value }
        $msg = $_.Message
        if ($msg -and $msg.Length -gt 4000) { $msg = $msg.Substring(0, 4000) }
        [pscustomobject]@{
            LogName          = $_.LogName
            ProviderName     = $_.ProviderName
            Id               = [int]$_.Id
            Level            = [int]$_.Level
            LevelDisplayName = $_.LevelDisplayName
            TimeCreated      = $_.TimeCreated.ToUniversalTime().ToString('o')
            Service          = $svc
            Message          = $msg
        }
    })

$doc = [pscustomobject]@{ Since = $start.ToUniversalTime().ToString('o'); Events = $events }
ConvertTo-Json -InputObject $doc -Depth 3 -Compress
