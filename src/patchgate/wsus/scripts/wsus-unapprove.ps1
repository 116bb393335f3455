# patchgate-op: wsus-unapprove
# Undoes what wsus-approve did for the lab: deletes the candidate's approvals for the lab's group (the group then
# falls back to any All Computers approval: IUpdateApproval.Delete, WSUS SDK ms746895 / "Deleting an Approval"
# ms744606), deletes the group when the run created it, and puts the targeting mode back. It never declines the
# update (IUpdate.Decline removes every group's approvals, ms747138).
# Parameters: Kb, Group, RemoveGroup (bool), TargetingMode ("Client" | "Server": the mode before the run; empty:
# leave the mode as it is, when the approval's answer was never read).
# Prints one JSON document: {"Kb":"KB...","Group":"...","Removed":<approvals deleted>,"GroupRemoved":bool}
param(
    [Parameter(Mandatory = $true)][string]$Kb,
    [Parameter(Mandatory = $true)][string]$Group,
    [bool]$RemoveGroup = $false,
    [string]$TargetingMode = 'Client'
)
$ErrorActionPreference = 'Stop'
[void][Reflection.Assembly]::LoadWithPartialName('Microsoft.UpdateServices.Administration')
$server = [Microsoft.UpdateServices.Administration.AdminProxy]::GetUpdateServer()
$number = $Kb -replace '^(?i)KB', ''
$target = $server.GetComputerTargetGroups() | Where-Object { $_.Name -eq $Group } | Select-Object -First 1
$removed = 0
$groupRemoved = $false
if ($null -ne $target) {
    foreach ($update in @($server.SearchUpdates($number) | Where-Object { $_.KnowledgebaseArticles -contains $number })) {
        foreach ($approval in @($update.GetUpdateApprovals($target))) { $approval.Delete(); $removed++ }
    }
    if ($RemoveGroup) { $target.Delete(); $groupRemoved = $true }
}
$config = $server.GetConfiguration()
if ($TargetingMode -and [string]$config.TargetingMode -ne $TargetingMode) {
    $config.TargetingMode = [Microsoft.UpdateServices.Administration.TargetingMode]::$TargetingMode
    $config.Save()
}
[pscustomobject]@{ Kb = $Kb.ToUpperInvariant(); Group = $Group; Removed = $removed; GroupRemoved = $groupRemoved } |
    ConvertTo-Json -Compress
