# patchgate-probe: ports
<#
  Listening TCP ports and UDP endpoints with the owning process id and name (effective exposure: 3389, 5985/5986,
  8530/8531 ...). Prints ONE compressed JSON document (schema: docs/probes.md#ports).
  ProcessName is Get-Process's name (no ".exe"; "System" and "Idle" for kernel listeners).

  Sources:
  - Get-NetTCPConnection: https://learn.microsoft.com/powershell/module/nettcpip/get-nettcpconnection
  - Get-NetUDPEndpoint:   https://learn.microsoft.com/powershell/module/nettcpip/get-netudpendpoint
#>
[CmdletBinding()]
param()
$ErrorActionPreference = 'Stop'

$names = @{}
Get-Process | ForEach-Object { $names[[int]$_.Id] = $_.ProcessName }

$tcp = @(Get-NetTCPConnection -State Listen -ErrorAction SilentlyContinue | ForEach-Object {
        [pscustomobject]@{ Protocol = 'TCP'; LocalAddress = $_.LocalAddress; LocalPort = [int]$_.LocalPort
            OwningProcess = [int]$_.OwningProcess; ProcessName = $names[[int]$_.OwningProcess] }
    })
$udp = @(Get-NetUDPEndpoint -ErrorAction SilentlyContinue | ForEach-Object {
        [pscustomobject]@{ Protocol = 'UDP'; LocalAddress = $_.LocalAddress; LocalPort = [int]$_.LocalPort
            OwningProcess = [int]$_.OwningProcess; ProcessName = $names[[int]$_.OwningProcess] }
    })

$all = @($tcp) + @($udp)
$listeners = @($all | Sort-Object -Property 'Protocol', 'LocalPort', 'LocalAddress')
ConvertTo-Json -InputObject ([pscustomobject]@{ Listeners = $listeners }) -Depth 3 -Compress
