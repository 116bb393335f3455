# patchgate-probe: processes
<#
  WSUS hosting processes (wsusservice.exe, w3wp.exe) and their direct children, for the CVE-2025-59287 "must be
  absent" check (cmd/powershell/rundll32/curl spawned by them). Prints ONE compressed JSON document
  (schema: docs/probes.md#processes). Only these processes are returned, not the whole process table.

  Sources:
  - Win32_Process: https://learn.microsoft.com/windows/win32/cimwin32prov/win32-process
  - Elastic rule "Windows Server Update Service Spawning Suspicious Processes":
    https://www.elastic.co/guide/en/security/current/windows-server-update-service-spawning-suspicious-processes.html
  - A reused ParentProcessId can attribute a child to the wrong parent; the indicator is a lead, not proof [U].
#>
[CmdletBinding()]
param([string[]]$ParentName = @('wsusservice.exe', 'w3wp.exe'))
$ErrorActionPreference = 'Stop'

$all = @(Get-CimInstance -ClassName Win32_Process -Property 'ProcessId', 'ParentProcessId', 'Name', 'CommandLine')
$parents = @{}
$all | Where-Object { $ParentName -contains $_.Name } | ForEach-Object { $parents[[int]$_.ProcessId] = $true }

$selected = @($all | Where-Object { $parents.ContainsKey([int]$_.ProcessId) -or $parents.ContainsKey([int]$_.ParentProcessId) } |
    Sort-Object -Property ProcessId | ForEach-Object {
        [pscustomobject]@{ ProcessId = [int]$_.ProcessId; ParentProcessId = [int]$_.ParentProcessId
            Name = $_.Name; CommandLine = $_.CommandLine }
    })

$doc = [pscustomobject]@{ ParentNames = [string[]]@($ParentName); Processes = $selected }
ConvertTo-Json -InputObject $doc -Depth 3 -Compress
