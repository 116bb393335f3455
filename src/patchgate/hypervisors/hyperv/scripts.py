"""The PowerShell the Hyper-V provider runs on a host: one script per operation, parameters bound by name.

Each script starts with its ``# patchgate-op:`` marker, takes its values as parameters (never interpolated into
the text) and prints one compressed JSON object (arrays inside an object, so Windows PowerShell 5.1 never
collapses a one-element list). Enums are converted to strings, dates to ISO 8601 UTC.

Cmdlets and the properties read, from the Hyper-V module's reference on learn.microsoft.com
(https://learn.microsoft.com/powershell/module/hyper-v/):

- ``Get-VM -Id`` / ``-Name``: ``VMId``, ``Name``, ``State``, ``Notes``, ``CheckpointType`` [U: property names
  checked against samples, not against a host];
- ``Get-VMSnapshot -VM <vm> [-Name]`` (parameter set VMObject) and its ``Id``, ``Name``, ``SnapshotType``,
  ``CreationTime`` (the reference's own example sorts on ``CreationTime``; ``Id`` [U]; the reference lists
  SnapshotType values Standard, Recovery, Planned, ... and no Production: what a production checkpoint reports
  there is [U], so ``checkpoint_type: production`` fails a revert naming the reported type rather than guess);
- ``Restore-VMSnapshot -VMSnapshot <snap> -AsJob -Confirm:$false`` (parameter set SnapshotObject, documented
  with ``-AsJob`` and ``-Confirm``), waited for with ``Wait-Job -Timeout``;
- ``Stop-VM -TurnOff -Force`` (power off without a guest shutdown) before a restore of a running or paused VM; a
  saved VM is restored as it is (applying a checkpoint replaces its saved state [U]); ``Start-VM``;
- a guest restart is ``Stop-VM -Force`` (a shutdown through the guest OS; Hyper-V gives it five minutes) and
  ``Start-VM``: ``Restart-VM`` is documented as a hard restart, "like powering the computer down";
- ``Get-VMIntegrationService -VM <vm> -Name Heartbeat``: ``Enabled``, ``PrimaryStatusDescription`` (``OK`` when
  the guest's heartbeat is healthy) [U: the exact text];
- ``Get-VMNetworkAdapter -VM <vm>``: ``IPAddresses`` (what the guest reports through KVP data exchange);
- ``Set-VM -Notes`` (the run tag line), ``Checkpoint-VM -SnapshotName`` (the failure checkpoint).

An unverified property that is wrong shows as lab trouble (a readiness wait that times out, a lookup that
finds nothing: inconclusive), never as a skipped check.
"""

from __future__ import annotations

from patchgate.remoting.base import Script

_HEAD = "$ErrorActionPreference = 'Stop'\n$ProgressPreference = 'SilentlyContinue'\n"

HOST = """# patchgate-op: hyperv-host
""" + _HEAD + """
$module = [bool](Get-Command -Name Get-VM -Module Hyper-V -ErrorAction SilentlyContinue)
$groups = @([Security.Principal.WindowsIdentity]::GetCurrent().Groups | ForEach-Object {
    try { $_.Translate([Security.Principal.NTAccount]).Value } catch { [string]$_ } })
$admin = [bool]($groups | Where-Object { $_ -like '*\\Hyper-V Administrators' -or $_ -like '*\\Administrators' })
ConvertTo-Json -Compress -InputObject ([ordered]@{
    host = $env:COMPUTERNAME; module = $module; hyperv_admin = $admin })
"""

FIND = """# patchgate-op: hyperv-find
param([string]$Name, [string]$VMId)
""" + _HEAD + """
if ($VMId) { $vms = @(Get-VM -Id $VMId -ErrorAction SilentlyContinue) }
else { $vms = @(Get-VM -Name $Name -ErrorAction SilentlyContinue) }
$found = @($vms | ForEach-Object { [ordered]@{
    VMId = [string]$_.VMId; Name = $_.Name; State = [string]$_.State; CheckpointType = [string]$_.CheckpointType } })
ConvertTo-Json -Compress -Depth 4 -InputObject ([ordered]@{ host = $env:COMPUTERNAME; vms = $found })
"""

CHECKPOINTS = """# patchgate-op: hyperv-checkpoints
param([string]$VMId, [string]$Name)
""" + _HEAD + """
$vm = Get-VM -Id $VMId
$found = @(Get-VMSnapshot -VM $vm -Name $Name -ErrorAction SilentlyContinue | ForEach-Object { [ordered]@{
    Id = [string]$_.Id; Name = $_.Name; SnapshotType = [string]$_.SnapshotType
    CreationTime = $_.CreationTime.ToUniversalTime().ToString('o') } })
ConvertTo-Json -Compress -Depth 4 -InputObject ([ordered]@{ VMId = $VMId; checkpoints = $found })
"""

STATE = """# patchgate-op: hyperv-state
param([string]$VMId)
""" + _HEAD + """
$vm = Get-VM -Id $VMId
$heartbeat = Get-VMIntegrationService -VM $vm -Name Heartbeat
$ips = @(Get-VMNetworkAdapter -VM $vm | ForEach-Object { $_.IPAddresses } | Where-Object { $_ })
ConvertTo-Json -Compress -Depth 4 -InputObject ([ordered]@{
    VMId = $VMId; State = [string]$vm.State; HeartbeatEnabled = [bool]$heartbeat.Enabled
    Heartbeat = [string]$heartbeat.PrimaryStatusDescription; IPAddresses = $ips; Notes = [string]$vm.Notes })
"""

RESTORE = """# patchgate-op: hyperv-restore
param([string]$VMId, [string]$CheckpointId, [int]$TimeoutSeconds)
""" + _HEAD + """
$vm = Get-VM -Id $VMId
$checkpoint = Get-VMSnapshot -VM $vm | Where-Object { [string]$_.Id -eq $CheckpointId }
if (-not $checkpoint) {
    ConvertTo-Json -Compress -InputObject ([ordered]@{ job = 'NotStarted'; errors = @('checkpoint not found');
        State = [string]$vm.State })
    return
}
if (@('Running', 'Paused') -contains [string]$vm.State) { Stop-VM -VM $vm -TurnOff -Force -Confirm:$false }
$job = Restore-VMSnapshot -VMSnapshot $checkpoint -Confirm:$false -AsJob
$null = Wait-Job -Job $job -Timeout $TimeoutSeconds
$state = [string]$job.State
$jobErrors = @()
if ($state -ne 'Running') {
    $null = Receive-Job -Job $job -ErrorAction SilentlyContinue -ErrorVariable jobErrors
    Remove-Job -Job $job -Force
}
$vm = Get-VM -Id $VMId
ConvertTo-Json -Compress -Depth 4 -InputObject ([ordered]@{
    job = $state; errors = @($jobErrors | ForEach-Object { [string]$_ }); State = [string]$vm.State })
"""

START = """# patchgate-op: hyperv-start
param([string]$VMId)
""" + _HEAD + """
$vm = Get-VM -Id $VMId
if ([string]$vm.State -ne 'Running') { Start-VM -VM $vm }
ConvertTo-Json -Compress -InputObject ([ordered]@{ VMId = $VMId; State = [string](Get-VM -Id $VMId).State })
"""

RESTART = """# patchgate-op: hyperv-restart
param([string]$VMId)
""" + _HEAD + """
$vm = Get-VM -Id $VMId
Stop-VM -VM $vm -Force -Confirm:$false
Start-VM -VM (Get-VM -Id $VMId)
ConvertTo-Json -Compress -InputObject ([ordered]@{ VMId = $VMId; State = [string](Get-VM -Id $VMId).State })
"""

TAG = """# patchgate-op: hyperv-tag
param([string]$VMId, [string]$Prefix, [string]$Value)
""" + _HEAD + """
$vm = Get-VM -Id $VMId
$lines = @(([string]$vm.Notes) -split "`r?`n" | Where-Object { $_ -and -not $_.StartsWith($Prefix) })
if ($Value) { $lines += ($Prefix + $Value) }
Set-VM -VM $vm -Notes ($lines -join "`r`n")
ConvertTo-Json -Compress -InputObject ([ordered]@{ VMId = $VMId; Notes = [string](Get-VM -Id $VMId).Notes })
"""

CHECKPOINT_CREATE = """# patchgate-op: hyperv-checkpoint-create
param([string]$VMId, [string]$Name)
""" + _HEAD + """
$vm = Get-VM -Id $VMId
Checkpoint-VM -VM $vm -SnapshotName $Name -Confirm:$false
ConvertTo-Json -Compress -InputObject ([ordered]@{ VMId = $VMId; Name = $Name })
"""

SCRIPTS = {"hyperv-host": HOST, "hyperv-find": FIND, "hyperv-checkpoints": CHECKPOINTS, "hyperv-state": STATE,
           "hyperv-restore": RESTORE, "hyperv-start": START, "hyperv-restart": RESTART, "hyperv-tag": TAG,
           "hyperv-checkpoint-create": CHECKPOINT_CREATE}


def op(name: str, **parameters: object) -> Script:
    """The script of operation ``name`` with its parameters."""
    return Script(name=name, body=SCRIPTS[name], parameters=dict(parameters))


# PowerShell Direct (remoting.kind: psdirect): the guest's PSSession lives in the host session's runspace, opened
# once with the guest's credentials (New-PSSession -VMId -Credential, PowerShell 5.1's New-PSSession reference:
# https://learn.microsoft.com/powershell/module/microsoft.powershell.core/new-pssession?view=powershell-5.1),
# then every script runs in it (Invoke-Command -Session) and files go through it (Copy-Item -ToSession).

PSDIRECT_OPEN = """# patchgate-op: psdirect-open
param([string]$VMId, [string]$UserName, [string]$Password)
""" + _HEAD + """
$secret = ConvertTo-SecureString -String $Password -AsPlainText -Force
$credential = New-Object System.Management.Automation.PSCredential($UserName, $secret)
if (-not $global:PatchgatePsDirect) { $global:PatchgatePsDirect = @{} }
$old = $global:PatchgatePsDirect[$VMId]
if ($old) { Remove-PSSession -Session $old -ErrorAction SilentlyContinue }
$global:PatchgatePsDirect[$VMId] = New-PSSession -VMId $VMId -Credential $credential
ConvertTo-Json -Compress -InputObject ([ordered]@{
    VMId = $VMId; State = [string]$global:PatchgatePsDirect[$VMId].State })
"""

PSDIRECT_RUN = """# patchgate-op: psdirect-run
param([string]$VMId, [string]$Body, [hashtable]$Parameters)
$ProgressPreference = 'SilentlyContinue'
$session = if ($global:PatchgatePsDirect) { $global:PatchgatePsDirect[$VMId] } else { $null }
if (-not $session -or [string]$session.State -ne 'Opened') { throw 'patchgate-psdirect-no-session' }
Invoke-Command -Session $session -ArgumentList $Body, $Parameters -ScriptBlock {
    param($Body, $Parameters)
    $block = [scriptblock]::Create($Body)
    & $block @Parameters
}
"""

PSDIRECT_COPY = """# patchgate-op: psdirect-copy
param([string]$VMId, [string]$HostPath, [string]$Destination)
""" + _HEAD + """
$session = if ($global:PatchgatePsDirect) { $global:PatchgatePsDirect[$VMId] } else { $null }
if (-not $session -or [string]$session.State -ne 'Opened') { throw 'patchgate-psdirect-no-session' }
try { Copy-Item -Path $HostPath -Destination $Destination -ToSession $session -Force }
finally { Remove-Item -LiteralPath $HostPath -Force -ErrorAction SilentlyContinue }
ConvertTo-Json -Compress -InputObject ([ordered]@{ VMId = $VMId; Path = $Destination })
"""

PSDIRECT_CLOSE = """# patchgate-op: psdirect-close
param([string]$VMId)
""" + _HEAD + """
$session = if ($global:PatchgatePsDirect) { $global:PatchgatePsDirect[$VMId] } else { $null }
if ($session) { Remove-PSSession -Session $session -ErrorAction SilentlyContinue; $global:PatchgatePsDirect.Remove($VMId) }
ConvertTo-Json -Compress -InputObject ([ordered]@{ VMId = $VMId; closed = [bool]$session })
"""

SCRIPTS.update({"psdirect-open": PSDIRECT_OPEN, "psdirect-run": PSDIRECT_RUN, "psdirect-copy": PSDIRECT_COPY,
                "psdirect-close": PSDIRECT_CLOSE})
NO_SESSION = "patchgate-psdirect-no-session"
