# patchgate-probe: firewall
<#
  Effective firewall posture from the ActiveStore (merged local + GPO policy): profiles, every rule joined with its
  port/address/application/service filters, and the network category in force per interface. Prints ONE compressed
  JSON document (schema: docs/probes.md#firewall).

  Each filter class is read ONCE and joined to rules by InstanceID: per-rule -AssociatedNetFirewallRule queries take
  minutes for hundreds of rules.

  Sources:
  - Get-NetFirewallRule -PolicyStore ActiveStore, filters as separate objects:
    https://learn.microsoft.com/powershell/module/netsecurity/get-netfirewallrule
  - Get-NetFirewallProfile: https://learn.microsoft.com/powershell/module/netsecurity/get-netfirewallprofile
  - Interface-type, interface and security filters (Get-NetFirewallInterfaceTypeFilter, -InterfaceFilter,
    -SecurityFilter) and the port filter's IcmpType: https://learn.microsoft.com/powershell/module/netsecurity/
  - Get-NetConnectionProfile: https://learn.microsoft.com/powershell/module/netconnection/get-netconnectionprofile
  - Whether ActiveStore still reports NotConfigured for GpoBoolean values is [U].
#>
[CmdletBinding()]
param()
$ErrorActionPreference = 'Stop'
$store = 'ActiveStore'

$profiles = @(Get-NetFirewallProfile -PolicyStore $store | ForEach-Object {
        [pscustomobject]@{
            Name                     = "$($_.Name)"
            Enabled                  = "$($_.Enabled)"
            DefaultInboundAction     = "$($_.DefaultInboundAction)"
            DefaultOutboundAction    = "$($_.DefaultOutboundAction)"
            AllowInboundRules        = "$($_.AllowInboundRules)"
            AllowLocalFirewallRules  = "$($_.AllowLocalFirewallRules)"
            AllowLocalIPsecRules     = "$($_.AllowLocalIPsecRules)"
            AllowUserApps            = "$($_.AllowUserApps)"
            AllowUserPorts           = "$($_.AllowUserPorts)"
            NotifyOnListen           = "$($_.NotifyOnListen)"
            LogFileName              = $_.LogFileName
            LogMaxSizeKilobytes      = $_.LogMaxSizeKilobytes
            LogAllowed               = "$($_.LogAllowed)"
            LogBlocked               = "$($_.LogBlocked)"
            LogIgnored               = "$($_.LogIgnored)"
            DisabledInterfaceAliases = [string[]]@($_.DisabledInterfaceAliases)
        }
    })

$pf = @{}; Get-NetFirewallPortFilter -PolicyStore $store | ForEach-Object { $pf[$_.InstanceID] = $_ }
$af = @{}; Get-NetFirewallAddressFilter -PolicyStore $store | ForEach-Object { $af[$_.InstanceID] = $_ }
$ap = @{}; Get-NetFirewallApplicationFilter -PolicyStore $store | ForEach-Object { $ap[$_.InstanceID] = $_ }
$sv = @{}; Get-NetFirewallServiceFilter -PolicyStore $store | ForEach-Object { $sv[$_.InstanceID] = $_ }
$it = @{}; Get-NetFirewallInterfaceTypeFilter -PolicyStore $store | ForEach-Object { $it[$_.InstanceID] = $_ }
$nf = @{}; Get-NetFirewallInterfaceFilter -PolicyStore $store | ForEach-Object { $nf[$_.InstanceID] = $_ }
$sf = @{}; Get-NetFirewallSecurityFilter -PolicyStore $store | ForEach-Object { $sf[$_.InstanceID] = $_ }

$rules = @(Get-NetFirewallRule -PolicyStore $store | Sort-Object -Property Name | ForEach-Object {
        $id = $_.InstanceID; $p = $pf[$id]; $a = $af[$id]; $app = $ap[$id]; $svc = $sv[$id]
        $itf = $it[$id]; $nif = $nf[$id]; $sec = $sf[$id]
        [pscustomobject]@{
            Name                  = $_.Name
            DisplayName           = $_.DisplayName
            Group                 = $_.Group
            Enabled               = "$($_.Enabled)"
            Direction             = "$($_.Direction)"
            Action                = "$($_.Action)"
            Profile               = "$($_.Profile)"
            Protocol              = $(if ($p) { "$($p.Protocol)" } else { $null })
            LocalPort             = $(if ($p) { [string[]]@($p.LocalPort) } else { [string[]]@() })
            RemotePort            = $(if ($p) { [string[]]@($p.RemotePort) } else { [string[]]@() })
            LocalAddress          = $(if ($a) { [string[]]@($a.LocalAddress) } else { [string[]]@() })
            RemoteAddress         = $(if ($a) { [string[]]@($a.RemoteAddress) } else { [string[]]@() })
            Program               = $(if ($app) { $app.Program } else { $null })
            Service               = $(if ($svc) { $svc.Service } else { $null })
            IcmpType              = $(if ($p) { [string[]]@($p.IcmpType) } else { [string[]]@() })
            InterfaceType         = $(if ($itf) { "$($itf.InterfaceType)" } else { $null })
            InterfaceAlias        = $(if ($nif) { [string[]]@($nif.InterfaceAlias) } else { [string[]]@() })
            Authentication        = $(if ($sec) { "$($sec.Authentication)" } else { $null })
            Encryption            = $(if ($sec) { "$($sec.Encryption)" } else { $null })
            EdgeTraversal         = "$($_.EdgeTraversalPolicy)"
            PolicyStoreSourceType = "$($_.PolicyStoreSourceType)"
        }
    })

$connections = @(Get-NetConnectionProfile -ErrorAction SilentlyContinue | ForEach-Object {
        [pscustomobject]@{ InterfaceAlias = $_.InterfaceAlias; NetworkCategory = "$($_.NetworkCategory)" }
    })

$doc = [pscustomobject]@{ Profiles = $profiles; Rules = $rules; ConnectionProfiles = $connections }
ConvertTo-Json -InputObject $doc -Depth 4 -Compress
