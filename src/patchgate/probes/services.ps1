# patchgate-probe: services
<#
  Every Win32_Service (or only -Name ...) with the fields an update may change. Prints ONE compressed JSON
  document (schema: docs/probes.md#services). Services are snapshotted and diffed, never hard-coded: WS2025
  default start types (hpatchmon, UsoSvc, Arc services) are [U].

  Sources:
  - Win32_Service properties: https://learn.microsoft.com/windows/win32/cimwin32prov/win32-service
  - TriggerStart: the service has a TriggerInfo subkey (sc.exe qtriggerinfo reads the same triggers); such a
    service is started and stopped by SCM on events, so "Auto and stopped" is normal for it [U]
#>
[CmdletBinding()]
param([string[]]$Name)
$ErrorActionPreference = 'Stop'

$services = @(Get-CimInstance -ClassName Win32_Service |
    Where-Object { -not $Name -or $Name -contains $_.Name } |
    Sort-Object -Property Name |
    ForEach-Object {
        [pscustomobject]@{
            Name                    = $_.Name
            DisplayName             = $_.DisplayName
            State                   = $_.State
            StartMode               = $_.StartMode
            DelayedAutoStart        = $_.DelayedAutoStart
            TriggerStart            = Test-Path -LiteralPath "HKLM:\SYSTEM\CurrentControlSet\Services\$($_.Name)\TriggerInfo"
            Status                  = $_.Status
            ExitCode                = $_.ExitCode
            ServiceSpecificExitCode = $_.ServiceSpecificExitCode
            ProcessId               = $_.ProcessId
            StartName               = $_.StartName
            PathName                = $_.PathName
        }
    })

ConvertTo-Json -InputObject ([pscustomobject]@{ Services = $services }) -Depth 3 -Compress
