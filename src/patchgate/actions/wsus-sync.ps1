# patchgate-op: wsus-sync
# Start a WSUS synchronization after the update and wait for it to finish, then print the last
# ISynchronizationInfo as one JSON document.
# Sources: Get-WsusServer https://learn.microsoft.com/powershell/module/updateservices/get-wsusserver
#          ISynchronizationInfo https://learn.microsoft.com/previous-versions/windows/desktop/aa354313(v=vs.85)
# Status cycles Running -> Stopping -> NotProcessing. ErrorText is reported but never asserted on: after the
# CVE-2025-59287 fix the WSUS UI stopped showing synchronization error details ([U] whether the API blanks it).
param([int]$TimeoutSeconds = 3600, [int]$PollSeconds = 15)
$ErrorActionPreference = 'Stop'
$server = Get-WsusServer
$subscription = $server.GetSubscription()
$subscription.StartSynchronization()
$deadline = (Get-Date).AddSeconds($TimeoutSeconds)
do {
    Start-Sleep -Seconds $PollSeconds
    $status = "$($subscription.GetSynchronizationStatus())"
    if ((Get-Date) -gt $deadline) { throw "WSUS synchronization still '$status' after $TimeoutSeconds s" }
} while ($status -ne 'NotProcessing')
$info = $subscription.GetLastSynchronizationInfo()
[pscustomobject]@{
    StartTime        = $info.StartTime.ToUniversalTime().ToString('o')
    EndTime          = $info.EndTime.ToUniversalTime().ToString('o')
    Result           = "$($info.Result)"
    Error            = "$($info.Error)"
    ErrorText        = "$($info.ErrorText)"
    StartedManually  = [bool]$info.StartedManually
    UpdateErrorCount = @($info.UpdateErrors).Count
    Id               = "$($info.Id)"
} | ConvertTo-Json -Compress
