# patchgate-op: wsus-sync
# Start a WSUS synchronization after the update and wait for it to finish, then print the last
# ISynchronizationInfo as one JSON document.
# Sources: Get-WsusServer https://learn.microsoft.com/powershell/module/updateservices/get-wsusserver
#          ISynchronizationInfo https://learn.microsoft.com/previous-versions/windows/desktop/aa354313(v=vs.85)
# Status cycles Running -> Stopping -> NotProcessing. ErrorText is reported but never asserted on: after the
# CVE-2025-59287 fix the WSUS UI stopped showing synchronization error details ([U] whether the API blanks it).
# A new synchronization is the one whose Id differs from the last one before StartSynchronization(): without that
# check a sync that has not started yet (status still NotProcessing) would read the PREVIOUS sync as the result.
# Times: the WSUS API reports UTC, some with Kind=Unspecified [U]; those are taken as UTC, not shifted by the local
# offset - the same convention as probes/wsus.ps1 (docs/probes.md#wsus).
param([int]$TimeoutSeconds = 3600, [int]$PollSeconds = 15)
$ErrorActionPreference = 'Stop'

function ConvertTo-IsoUtc($Value) {
    if ($null -eq $Value) { return $null }
    $d = [datetime]$Value
    if ($d -eq [datetime]::MinValue -or $d -eq [datetime]::MaxValue) { return $null }
    if ($d.Kind -eq [DateTimeKind]::Unspecified) { $d = [datetime]::SpecifyKind($d, [DateTimeKind]::Utc) }
    return $d.ToUniversalTime().ToString('o')
}

$server = Get-WsusServer
$subscription = $server.GetSubscription()
$previous = $subscription.GetLastSynchronizationInfo()
$previousId = $null; if ($null -ne $previous) { $previousId = "$($previous.Id)" }
$subscription.StartSynchronization()
$deadline = (Get-Date).AddSeconds($TimeoutSeconds)
do {
    Start-Sleep -Seconds $PollSeconds
    $status = "$($subscription.GetSynchronizationStatus())"
    $info = $subscription.GetLastSynchronizationInfo()
    $isNew = $null -ne $info -and "$($info.Id)" -ne $previousId
    if ((Get-Date) -gt $deadline) {
        throw "WSUS synchronization: no new synchronization finished within $TimeoutSeconds s (status '$status', last Id $previousId)"
    }
} while ($status -ne 'NotProcessing' -or -not $isNew)
[pscustomobject]@{
    StartTime        = ConvertTo-IsoUtc $info.StartTime
    EndTime          = ConvertTo-IsoUtc $info.EndTime
    Result           = "$($info.Result)"
    Error            = "$($info.Error)"
    ErrorText        = "$($info.ErrorText)"
    StartedManually  = [bool]$info.StartedManually
    UpdateErrorCount = @($info.UpdateErrors).Count
    Id               = "$($info.Id)"
    PreviousId       = $previousId
} | ConvertTo-Json -Compress
