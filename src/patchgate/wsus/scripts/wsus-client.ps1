# patchgate-op: wsus-client
# Points this VM at the lab's WSUS and has it scan, download and install what WSUS offers it.
# Policy values (Group Policy's backing keys; Microsoft Learn, "Manage additional Windows Update settings",
# /windows/deployment/update/waas-wu-settings): WindowsUpdate\WUServer, WUStatusServer, AU\UseWUServer = 1; client-
# side targeting: TargetGroupEnabled = 1, TargetGroup = <group> (the page documents the policy; these two value
# names come from community sources [U]). AU\NoAutoUpdate = 1 keeps Automatic Updates from installing on its own.
# The Windows Update Agent's downloader and installer cannot be used from a remote session (E_ACCESSDENIED:
# https://learn.microsoft.com/windows/win32/wua_sdk/using-wua-from-a-remote-computer), so the scan, download and
# install run as a SYSTEM scheduled task that writes its result to a file this op reads (the pattern of
# PSWindowsUpdate's Invoke-WUJob); the task and its files are removed in every outcome.
# Parameters: Url (http(s)://server:port), Group, TaskName, TimeoutSeconds.
# Prints one JSON document:
#   {"Offered":[{"Kb":"KB...","Title":"...","Classification":"...","Hotpatch":bool,"UpdateId":"<guid>"}],
#    "Installed":["KB..."],"Results":[{"Kb":"KB...","ResultCode":<int>,"HResult":<int>,"RebootRequired":bool}],
#    "ResultCode":<int>,"HResult":<int>,"RebootRequired":bool,"Error":null|"...","TaskName":"...","TaskRemoved":bool}
# Hotpatch: the title starts with "Hotpatch" or "<yyyy-mm> Hotpatch", as Microsoft's hotpatch KB titles do; the WSUS
# title and classification of a hotpatch are not documented [U] (docs/wsus.md).
# ResultCode is WUA's OperationResultCode: 0 not started, 1 in progress, 2 succeeded, 3 succeeded with errors,
# 4 failed, 5 aborted (https://learn.microsoft.com/windows/win32/api/wuapi/ne-wuapi-operationresultcode).
param(
    [Parameter(Mandatory = $true)][string]$Url,
    [Parameter(Mandatory = $true)][string]$Group,
    [Parameter(Mandatory = $true)][string]$TaskName,
    [int]$TimeoutSeconds = 1800
)
$ErrorActionPreference = 'Stop'
$wu = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate'
New-Item -Path "$wu\AU" -Force | Out-Null
Set-ItemProperty -Path $wu -Name WUServer -Value $Url
Set-ItemProperty -Path $wu -Name WUStatusServer -Value $Url
Set-ItemProperty -Path $wu -Name TargetGroupEnabled -Value 1 -Type DWord
Set-ItemProperty -Path $wu -Name TargetGroup -Value $Group
Set-ItemProperty -Path "$wu\AU" -Name UseWUServer -Value 1 -Type DWord
Set-ItemProperty -Path "$wu\AU" -Name NoAutoUpdate -Value 1 -Type DWord
Restart-Service -Name wuauserv -Force

$dir = Join-Path $env:ProgramData 'patchgate\wsus'
New-Item -Path $dir -ItemType Directory -Force | Out-Null
$job = Join-Path $dir "$TaskName.ps1"
$out = Join-Path $dir "$TaskName.json"
Remove-Item -LiteralPath $out -ErrorAction SilentlyContinue
Set-Content -LiteralPath $job -Encoding UTF8 -Value @'
param([string]$Out)
$doc = [ordered]@{ Offered = @(); Installed = @(); Results = @(); ResultCode = 0; HResult = 0; RebootRequired = $false; Error = $null }
try {
    $session = New-Object -ComObject Microsoft.Update.Session
    $found = $session.CreateUpdateSearcher().Search("IsInstalled=0 and Type='Software' and IsHidden=0")
    $todo = New-Object -ComObject Microsoft.Update.UpdateColl
    foreach ($u in $found.Updates) {
        $kb = if ($u.KBArticleIDs.Count -gt 0) { 'KB' + $u.KBArticleIDs.Item(0) } else { $null }
        $class = ($u.Categories | Where-Object { $_.Type -eq 'UpdateClassification' } | Select-Object -First 1).Name
        $doc.Offered += [ordered]@{ Kb = $kb; Title = $u.Title; Classification = $class
                                    Hotpatch = ($u.Title -match '^(\d{4}-\d{2} )?Hotpatch\b'); UpdateId = $u.Identity.UpdateID }
        if (-not $u.EulaAccepted) { $u.AcceptEula() }
        [void]$todo.Add($u)
    }
    if ($todo.Count -gt 0) {
        $downloader = $session.CreateUpdateDownloader(); $downloader.Updates = $todo; [void]$downloader.Download()
        $installer = $session.CreateUpdateInstaller(); $installer.Updates = $todo
        $result = $installer.Install()
        $doc.ResultCode = [int]$result.ResultCode; $doc.HResult = [int]$result.HResult
        $doc.RebootRequired = [bool]$result.RebootRequired
        for ($i = 0; $i -lt $todo.Count; $i++) {
            $one = $result.GetUpdateResult($i)
            $doc.Results += [ordered]@{ Kb = $doc.Offered[$i].Kb; ResultCode = [int]$one.ResultCode
                                        HResult = [int]$one.HResult; RebootRequired = [bool]$one.RebootRequired }
            if ([int]$one.ResultCode -in 2, 3) { $doc.Installed += $doc.Offered[$i].Kb }
        }
    } else { $doc.ResultCode = 2 }
} catch { $doc.Error = $_.Exception.Message; $doc.HResult = $_.Exception.HResult; $doc.ResultCode = 4 }
$doc | ConvertTo-Json -Depth 4 | Set-Content -LiteralPath "$Out.tmp" -Encoding UTF8
Move-Item -LiteralPath "$Out.tmp" -Destination $Out -Force
'@
$removed = $false
try {
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument "-NoProfile -ExecutionPolicy Bypass -File `"$job`" -Out `"$out`""
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    Register-ScheduledTask -TaskName $TaskName -Action $action -Principal $principal -Force | Out-Null
    Start-ScheduledTask -TaskName $TaskName
    $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
    while (-not (Test-Path -LiteralPath $out) -and (Get-Date) -lt $deadline) { Start-Sleep -Seconds 5 }
    if (Test-Path -LiteralPath $out) {
        $doc = Get-Content -LiteralPath $out -Raw | ConvertFrom-Json
    } else {
        $doc = [pscustomobject]@{ Offered = @(); Installed = @(); Results = @(); ResultCode = 5; HResult = 0
                                  RebootRequired = $false; Error = "the task did not finish within $TimeoutSeconds s" }
    }
} finally {
    Stop-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false -ErrorAction SilentlyContinue
    $removed = $null -eq (Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue)
    Remove-Item -LiteralPath $job, $out -ErrorAction SilentlyContinue
}
$doc | Add-Member -NotePropertyName TaskName -NotePropertyValue $TaskName -Force
$doc | Add-Member -NotePropertyName TaskRemoved -NotePropertyValue $removed -Force
$doc | ConvertTo-Json -Depth 5 -Compress
