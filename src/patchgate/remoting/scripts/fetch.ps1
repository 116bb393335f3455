# patchgate-op: fetch
# Downloads one candidate package onto the VM from the run's content server (or the lab's share), resumable, and
# checks its SHA-256 ON THE VM before it is put where the install op looks for it.
# A file already at Destination with the expected SHA-256 (a snapshot that ships it, an earlier attempt) is kept
# and nothing is downloaded.
# 1. BITS first (Start-BitsTransfer, synchronous, Foreground priority): BITS needs HEAD with Content-Length and
#    single byte-range GET from the server, which the content server offers
#    (https://learn.microsoft.com/windows/win32/bits/http-requirements-for-bits-downloads,
#    https://learn.microsoft.com/powershell/module/bitstransfer/start-bitstransfer). BITS checks certificates
#    against the machine's trust store and cannot pin one, so for the content server it is used only when the
#    server's certificate is the pinned one (checked first, below) and with -SecurityFlags that accept a
#    certificate no CA signed; an https share has no pin and its certificate is checked against the machine's
#    trust store, by BITS and by HttpWebRequest alike. The SHA-256 check after the download proves the content.
#    Whether BITS can create a job in a WinRM (network logon) session on Windows Server 2025 is [U]: when it
#    cannot, the op says so in Log and uses 2.
# 2. HttpWebRequest with a Range header from what the partial file already holds: a dropped connection resumes
#    where it stopped (up to MaxAttempts attempts), with the server certificate pinned by its SHA-256
#    (Fingerprint: upper-case hex of the DER certificate's SHA-256).
# The folder holds the candidate's packages and nothing else (Keep: their file names; any other file there is
# removed first): DISM is given the target cumulative update and finds its checkpoint cumulative updates in the
# same folder ("Catalog checkpoint cumulative updates",
# https://learn.microsoft.com/windows/deployment/update/catalog-checkpoint-cumulative-updates), so a stray package
# left there by another candidate could be taken for one of them [U].
# Parameters: Url; Destination (full path of the file); Sha256 (expected, hex); Size (bytes; sent as text, which
#   [long] binds, since PSRP would carry the harness's integer as a 32-bit I32); Fingerprint
#   (certificate pin, empty for a share); TimeoutSeconds; MaxAttempts (default 5); Keep (file names the folder
#   may hold, default: only Destination's); ShareUser and SharePassword (optional, share only: the account of
#   staging.share.credentials). They arrive as parameters of this pipeline, never on a command line (a process's
#   command line is what process-creation auditing records, event 4688, "Command line process auditing",
#   https://learn.microsoft.com/windows-server/identity/ad-ds/manage/component-updates/command-line-process-auditing,
#   so `net use` with the password is not used); the PSCredential is built here, in this process.
#   A UNC share is read through a PSDrive made with that credential (New-PSDrive -Credential, "Example 4" of
#   https://learn.microsoft.com/powershell/module/microsoft.powershell.management/new-psdrive?view=powershell-5.1)
#   that lives only for this op; an HTTP(S) share gets the account as the request's NetworkCredential and as
#   BITS's -Credential with -Authentication Basic. Whether module logging, when a lab turns it on for
#   Microsoft.PowerShell.Security, records ConvertTo-SecureString's -String binding is [U].
# Prints one JSON document:
#   {"Path":"<full path>","Sha256":"<UPPER HEX>"|null,"Bytes":<int, downloaded by this op>,"Skipped":true|false,
#    "Method":"present"|"bits"|"http"|"copy","Resumes":<int>,"Log":["<line>", ...]}
# Sha256 is the hash of what is at Path after the op (null when nothing is there): a download whose hash is not
# the expected one is deleted and reported with its actual hash, so the harness refuses it.
param(
    [Parameter(Mandatory = $true)][string]$Url,
    [Parameter(Mandatory = $true)][string]$Destination,
    [Parameter(Mandatory = $true)][string]$Sha256,
    [Parameter(Mandatory = $true)][long]$Size,
    [string]$Fingerprint = '',
    [int]$TimeoutSeconds = 1800,
    [int]$MaxAttempts = 5,
    [string[]]$Keep = @(),
    [string]$ShareUser = '',
    [string]$SharePassword = ''
)
$ErrorActionPreference = 'Stop'
$log = New-Object System.Collections.Generic.List[string]
$expected = $Sha256.ToUpperInvariant()
$deadline = (Get-Date).AddSeconds($TimeoutSeconds)
$partial = "$Destination.partial"
$Credential = $null
if ($ShareUser) {
    $secret = ConvertTo-SecureString -String $SharePassword -AsPlainText -Force
    $Credential = New-Object System.Management.Automation.PSCredential($ShareUser, $secret)
}

function Out-Result([string]$Method, [long]$Bytes, [bool]$Skipped, [int]$Resumes, $Hash) {
    # $Hash: the SHA-256 of what is at Destination now ($null: nothing is), hashed once (packages are gigabytes)
    [pscustomobject]@{ Path = $Destination; Sha256 = $Hash; Bytes = $Bytes; Skipped = $Skipped; Method = $Method;
                       Resumes = $Resumes; Log = @($log) } | ConvertTo-Json -Compress -Depth 3
}

function Test-Download([string]$Path) {
    # the downloaded file becomes Destination only when it is the approved one (its hash is returned);
    # otherwise it is removed and $null returned
    $actual = (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash
    if ($actual -eq $expected) {
        Move-Item -LiteralPath $Path -Destination $Destination -Force
        return $actual
    }
    $log.Add("Refused: the downloaded file has SHA-256 $actual, expected $expected; it was deleted")
    Remove-Item -LiteralPath $Path -Force
    return $null
}

# .NET for the parts of a path: Split-Path -LiteralPath with -Parent or -Leaf is 'Parameter set cannot be resolved'
# on Windows PowerShell 5.1 (https://github.com/PowerShell/PowerShell/issues/8751)
$folder = [System.IO.Path]::GetDirectoryName($Destination)
New-Item -ItemType Directory -Path $folder -Force | Out-Null
$Keep = @($Keep) + @([System.IO.Path]::GetFileName($Destination))
Get-ChildItem -LiteralPath $folder -File | Where-Object {
        $Keep -notcontains $_.Name -and $Keep -notcontains ($_.Name -replace '\.partial$', '') } | ForEach-Object {
    $log.Add("Removed $($_.Name): not a package of this candidate (DISM looks for checkpoints in this folder)")
    Remove-Item -LiteralPath $_.FullName -Force
}
if (Test-Path -LiteralPath $Destination -PathType Leaf) {
    if ((Get-FileHash -LiteralPath $Destination -Algorithm SHA256).Hash -eq $expected) {
        $log.Add('Already present with the expected SHA-256; not downloaded')
        Out-Result 'present' 0 $true 0 $expected
        return
    }
    Remove-Item -LiteralPath $Destination -Force
}

if ($Url -notmatch '^https?://') {
    # a UNC share: the VM reads it with the given account (a drive that lives only for this op)
    $root = [System.IO.Path]::GetDirectoryName($Url)
    $drive = $null
    if ($null -ne $Credential) {
        $drive = New-PSDrive -Name ('pg' + [guid]::NewGuid().ToString('N').Substring(0, 8)) -PSProvider FileSystem `
            -Root $root -Credential $Credential
    }
    try {
        $source = $Url
        if ($null -ne $drive) { $source = "$($drive.Name):\$([System.IO.Path]::GetFileName($Url))" }
        Copy-Item -LiteralPath $source -Destination $partial -Force
    } finally {
        if ($null -ne $drive) { Remove-PSDrive -Name $drive.Name -Force }
    }
    Out-Result 'copy' $Size $false 0 (Test-Download $partial)
    return
}

if (-not ('PatchgatePin' -as [type])) {
    Add-Type -TypeDefinition @'
using System;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
public static class PatchgatePin {
    public static string Hash(X509Certificate cert) {
        using (var sha = SHA256.Create()) {
            return BitConverter.ToString(sha.ComputeHash(cert.GetRawCertData())).Replace("-", "");
        }
    }
    public static RemoteCertificateValidationCallback For(string pin) {
        return (sender, cert, chain, errors) => cert != null && string.Equals(Hash(cert), pin, StringComparison.OrdinalIgnoreCase);
    }
}
'@
}
$pin = $Fingerprint.ToUpperInvariant()
$uri = [Uri]$Url
if ($uri.Scheme -eq 'https' -and $pin) {
    # the server must present the pinned certificate before anything is asked of it (BITS included)
    $client = New-Object System.Net.Sockets.TcpClient($uri.Host, $uri.Port)
    try {
        $tls = New-Object System.Net.Security.SslStream($client.GetStream(), $false, [PatchgatePin]::For($pin))
        $tls.AuthenticateAsClient($uri.Host)
        $tls.Dispose()
    } finally { $client.Close() }
}

$resumes = 0
try {
    # a partial file from an earlier attempt is resumed over HTTPS below; BITS starts only on a clean slate
    if (Test-Path -LiteralPath $partial) { throw 'a partial download is there to resume' }
    Import-Module BitsTransfer
    $account = @{}
    if ($null -ne $Credential) { $account = @{ Credential = $Credential; Authentication = 'Basic' } }
    # only a pinned server (checked above) may present a certificate no CA signed; a share's certificate is
    # checked against the machine's trust store, as BITS does by default.
    # SecurityFlagValue names as a PowerShell user documents them (reddit r/PowerShell, 2024) [U]
    if ($pin) { $account['SecurityFlags'] = 'IgnoreCertCNInvalid, IgnoreCertDateInvalid, IgnoreUnknownCA' }
    Start-BitsTransfer -Source $Url -Destination $partial -Priority Foreground -TransferType Download @account `
        -RetryInterval 60 -RetryTimeout ([Math]::Max(60, $TimeoutSeconds)) `
        -MaxDownloadTime ([Math]::Max(60, $TimeoutSeconds)) -DisplayName 'patchgate fetch'
    Out-Result 'bits' $Size $false 0 (Test-Download $partial)
    return
} catch {
    $log.Add("BITS did not download it ($($_.Exception.Message)); downloading over HTTPS with resume")
    Get-BitsTransfer -ErrorAction SilentlyContinue | Where-Object { $_.DisplayName -eq 'patchgate fetch' } |
        Remove-BitsTransfer -ErrorAction SilentlyContinue
}

$downloaded = [long]0
$attempt = 0
while ($true) {
    $attempt++
    $have = [long]0
    if (Test-Path -LiteralPath $partial) { $have = (Get-Item -LiteralPath $partial).Length }
    if ($have -ge $Size) { break }
    if ($attempt -gt $MaxAttempts) { throw "the download stopped at $have of $Size bytes after $MaxAttempts attempts" }
    if ((Get-Date) -gt $deadline) { throw "the download ran past $TimeoutSeconds s" }
    try {
        $request = [System.Net.HttpWebRequest][System.Net.WebRequest]::Create($uri)
        if ($pin) { $request.ServerCertificateValidationCallback = [PatchgatePin]::For($pin) }
        if ($null -ne $Credential) { $request.Credentials = $Credential.GetNetworkCredential() }
        $request.Timeout = 60000
        $request.ReadWriteTimeout = 60000
        if ($have -gt 0) { $request.AddRange($have) }
        $response = $request.GetResponse()
        try {
            $append = ($have -gt 0 -and [int]$response.StatusCode -eq 206)
            $mode = if ($append) { [System.IO.FileMode]::Append } else { [System.IO.FileMode]::Create }
            $stream = $response.GetResponseStream()
            $file = New-Object System.IO.FileStream($partial, $mode, [System.IO.FileAccess]::Write)
            try {
                $buffer = New-Object byte[] 1048576
                while (($read = $stream.Read($buffer, 0, $buffer.Length)) -gt 0) {
                    $file.Write($buffer, 0, $read)
                    $downloaded += $read
                    if ((Get-Date) -gt $deadline) { throw "the download ran past $TimeoutSeconds s" }
                }
            } finally { $file.Dispose(); $stream.Dispose() }
        } finally { $response.Close() }
    } catch [System.Net.WebException], [System.IO.IOException] {
        if ($attempt -ge $MaxAttempts) { throw }
        $resumes++
        $log.Add("Attempt $attempt ended early ($($_.Exception.Message)); resuming")
    }
}
Out-Result 'http' $downloaded $false $resumes (Test-Download $partial)
