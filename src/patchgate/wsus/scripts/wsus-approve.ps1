# patchgate-op: wsus-approve
# Approves the candidate for the lab's computer target group on this WSUS server, creating the group if missing and
# switching the server to client-side targeting (the lab's VMs name their group in the TargetGroup policy value).
# WSUS administration API (Microsoft Learn, WSUS SDK): AdminProxy.GetUpdateServer (aa349325),
# IUpdateServer.CreateComputerTargetGroup (aa349860), IUpdate.Approve(Install, group) (ms747129),
# IUpdateServerConfiguration.TargetingMode (ms752787). Approve-WsusUpdate has no group creation, hence the API.
# With a deadline: IUpdate.Approve(Install, group, DateTime deadline), the deadline in UTC (ms747129); the cmdlet
# Approve-WsusUpdate has no deadline parameter.
# Parameters: Kb ("KB5070881"), Group (the computer target group), Deadline (optional, ISO 8601 UTC),
#   Production (bool, `patchgate promote`: the group must exist already and the targeting mode is left alone).
# Prints one JSON document:
#   {"Kb":"KB...","Group":"...","GroupCreated":bool,"PreviousTargetingMode":"Client"|"Server",
#    "Updates":[{"UpdateId":"<guid>","Title":"...","CreationDate":"<UTC>","Deadline":"<UTC>"|null}],
#    "Url":"http(s)://<fqdn>:<port>"}
# An update WSUS does not hold (not synchronized, or declined) is an error record, and nothing is approved.
param(
    [Parameter(Mandatory = $true)][string]$Kb,
    [Parameter(Mandatory = $true)][string]$Group,
    [string]$Deadline = '',
    [bool]$Production = $false
)
$ErrorActionPreference = 'Stop'
[void][Reflection.Assembly]::LoadWithPartialName('Microsoft.UpdateServices.Administration')
$server = [Microsoft.UpdateServices.Administration.AdminProxy]::GetUpdateServer()
$number = $Kb -replace '^(?i)KB', ''
$updates = @($server.SearchUpdates($number) | Where-Object { $_.KnowledgebaseArticles -contains $number -and -not $_.IsDeclined })
if ($updates.Count -eq 0) {
    throw "WSUS on $env:COMPUTERNAME holds no approvable update $Kb (not synchronized yet, or declined)"
}
$config = $server.GetConfiguration()
$previous = [string]$config.TargetingMode
if ($previous -ne 'Client' -and -not $Production) {
    $config.TargetingMode = [Microsoft.UpdateServices.Administration.TargetingMode]::Client
    $config.Save()
}
$target = $server.GetComputerTargetGroups() | Where-Object { $_.Name -eq $Group } | Select-Object -First 1
$created = $false
if ($null -eq $target -and $Production) {
    throw "WSUS on $env:COMPUTERNAME has no computer target group '$Group' (production groups are never created)"
}
if ($null -eq $target) {
    $target = $server.CreateComputerTargetGroup($Group)
    $created = $true
}
$approved = New-Object System.Collections.Generic.List[object]
foreach ($update in $updates) {
    if ($update.RequiresLicenseAgreementAcceptance) { $update.AcceptLicenseAgreement() }
    $install = [Microsoft.UpdateServices.Administration.UpdateApprovalAction]::Install
    if ($Deadline) {
        $styles = [Globalization.DateTimeStyles]::AdjustToUniversal -bor [Globalization.DateTimeStyles]::AssumeUniversal
        $due = [DateTime]::Parse($Deadline, [Globalization.CultureInfo]::InvariantCulture, $styles)
        $approval = $update.Approve($install, $target, $due)
    } else {
        $approval = $update.Approve($install, $target)
    }
    $due = if ($approval.Deadline -eq [DateTime]::MaxValue) { $null } else { $approval.Deadline.ToString('o') }
    $approved.Add([pscustomobject]@{ UpdateId = [string]$update.Id.UpdateId; Title = $update.Title
        CreationDate = $approval.CreationDate.ToString('o'); Deadline = $due })
}
$scheme = if ($server.UseSecureConnection) { 'https' } else { 'http' }
$fqdn = [System.Net.Dns]::GetHostEntry($env:COMPUTERNAME).HostName
[pscustomobject]@{
    Kb = $Kb.ToUpperInvariant(); Group = $Group; GroupCreated = $created; PreviousTargetingMode = $previous
    Updates = @($approved); Url = "${scheme}://${fqdn}:$($server.PortNumber)"
} | ConvertTo-Json -Depth 4 -Compress
