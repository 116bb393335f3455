# patchgate-op: wsus-status
# Reads, never changes: what this WSUS server holds of a KB (its updates, their files and digests) and every
# approval of those updates, per computer target group, for `patchgate promote` (docs/rings.md).
# WSUS administration API (Microsoft Learn, WSUS SDK): IUpdate.GetInstallableItems (aa350147),
# IInstallableItem.Files (aa351893), UpdateFile.Hash "the SHA1 hash" (aa353737) and UpdateFile.AdditionalHash "the
# SHA2 hash" (dn622973), IUpdate.GetUpdateApprovals, IUpdateApproval.CreationDate (UTC, ms750903) and Deadline
# (DateTime.MaxValue: none, ms747129).
# AdditionalHash is reported as Sha256 only when it is 32 bytes long (a SHA-256 digest); that WSUS's "SHA2" is
# SHA-256 is [U], so any other length is reported as null and the file's SHA-256 counts as unknown.
# Parameters: Kb ("KB5070893").
# Prints one JSON document:
#   {"Kb":"KB...","Server":"<computer name>","Groups":["<name>",...],
#    "Updates":[{"UpdateId":"<guid>","Title":"...","IsDeclined":bool,
#                "Files":[{"Name":"...","Size":<bytes>,"Sha1":"<hex>","Sha256":"<hex>"|null}],
#                "Approvals":[{"Group":"...","Action":"Install","CreationDate":"<UTC>","Deadline":"<UTC>"|null}]}]}
param(
    [Parameter(Mandatory = $true)][string]$Kb
)
$ErrorActionPreference = 'Stop'
[void][Reflection.Assembly]::LoadWithPartialName('Microsoft.UpdateServices.Administration')
$server = [Microsoft.UpdateServices.Administration.AdminProxy]::GetUpdateServer()
$number = $Kb -replace '^(?i)KB', ''
function Hex([byte[]]$bytes) { if ($null -eq $bytes) { $null } else { ([BitConverter]::ToString($bytes) -replace '-', '').ToLowerInvariant() } }
$groups = @{}
foreach ($g in $server.GetComputerTargetGroups()) { $groups[[string]$g.Id] = $g.Name }
$updates = New-Object System.Collections.Generic.List[object]
foreach ($update in @($server.SearchUpdates($number) | Where-Object { $_.KnowledgebaseArticles -contains $number })) {
    $files = New-Object System.Collections.Generic.List[object]
    foreach ($item in @($update.GetInstallableItems())) {
        foreach ($file in @($item.Files)) {
            $sha256 = if ($null -ne $file.AdditionalHash -and $file.AdditionalHash.Length -eq 32) { Hex $file.AdditionalHash } else { $null }
            $files.Add([pscustomobject]@{ Name = $file.Name; Size = [long]$file.TotalBytes; Sha1 = (Hex $file.Hash); Sha256 = $sha256 })
        }
    }
    $approvals = New-Object System.Collections.Generic.List[object]
    foreach ($approval in @($update.GetUpdateApprovals())) {
        $due = if ($approval.Deadline -eq [DateTime]::MaxValue) { $null } else { $approval.Deadline.ToString('o') }
        $approvals.Add([pscustomobject]@{ Group = $groups[[string]$approval.ComputerTargetGroupId]
            Action = [string]$approval.Action; CreationDate = $approval.CreationDate.ToString('o'); Deadline = $due })
    }
    $updates.Add([pscustomobject]@{ UpdateId = [string]$update.Id.UpdateId; Title = $update.Title
        IsDeclined = [bool]$update.IsDeclined; Files = @($files); Approvals = @($approvals) })
}
[pscustomobject]@{ Kb = $Kb.ToUpperInvariant(); Server = $env:COMPUTERNAME; Groups = @($groups.Values)
    Updates = @($updates) } | ConvertTo-Json -Depth 6 -Compress
