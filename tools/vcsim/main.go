// Command vcsim runs govmomi's vCenter simulator (the VPX model) on loopback for patchgate's tests and
// rehearsal labs.
//
// It serves the vSphere SOAP API over TLS with a certificate generated at start-up (so clients can be
// tested with real CA and thumbprint validation), prints one JSON line {"url","thumbprint","cert","pid"}
// when it is ready, and exits on SIGTERM or SIGINT.
//
// The simulator runs every task synchronously, so a real vCenter's "VM busy with a running task" and
// "VM waiting on a question" states cannot occur on their own. A small control API under /_patchgate/
// (HTTP basic auth with the same user and password) creates them on purpose:
//
//	POST /_patchgate/hold?vm=NAME[&cancelable=1][&progress=N]   -> {"task":"task-12"}  task running on the VM
//	POST /_patchgate/progress?task=ID&progress=N                    update the held task's progress
//	POST /_patchgate/release?task=ID[&fault=1]                      finish it (success, or a SystemError fault)
//	POST /_patchgate/question?vm=NAME[&text=...]                    set runtime.question
//	POST /_patchgate/question?vm=NAME&clear=1                       clear it
//
// A held task appears in the VM's recentTask (as on vCenter) and answers CancelTask when cancelable.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	listen := flag.String("listen", "127.0.0.1", "address to bind (loopback only by design)")
	port := flag.Int("port", 0, "TCP port; 0 picks a free one")
	user := flag.String("username", envOr("VCSIM_USERNAME", "user"), "login user name (env VCSIM_USERNAME)")
	password := flag.String("password", envOr("VCSIM_PASSWORD", "pass"), "login password (env VCSIM_PASSWORD)")
	certOut := flag.String("cert-out", "", "write the server certificate (PEM) to this path")
	guestFollows := flag.Bool("guest-follows-power", true,
		"drop guest info (Tools, heartbeat, IP) when a VM powers off, resets or is reverted, as VMware Tools would")
	flag.Parse()

	cert, der, err := selfSigned(*listen)
	if err != nil {
		log.Fatalf("certificate: %v", err)
	}
	if *certOut != "" {
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := os.WriteFile(*certOut, pemBytes, 0o644); err != nil {
			log.Fatalf("write %s: %v", *certOut, err)
		}
	}

	model := simulator.VPX()
	if err := model.Create(); err != nil {
		log.Fatalf("create model: %v", err)
	}
	defer model.Remove()

	if *guestFollows {
		simulator.Map.AddHandler(&guestFollower{})
	}

	ctl := &control{user: *user, password: *password, held: map[string]*heldTask{}}
	model.Service.HandleFunc("/_patchgate/", ctl.serve)
	model.Service.Listen = &url.URL{
		Host: net.JoinHostPort(*listen, strconv.Itoa(*port)),
		User: url.UserPassword(*user, *password),
	}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	server := model.Service.NewServer()

	sum := sha256.Sum256(der)
	u := *server.URL
	u.User = nil
	line, _ := json.Marshal(map[string]interface{}{
		"url":        u.String(),
		"thumbprint": colonHex(sum[:]),
		"cert":       *certOut,
		"pid":        os.Getpid(),
	})
	fmt.Println(string(line))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	ctl.releaseAll()
	server.Close()
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// selfSigned makes a fresh certificate per start, valid for the listen address and localhost; it is its
// own CA so a test can hand it to a client as the CA bundle.
func selfSigned(host string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vcsim.patchgate.test", Organization: []string{"patchgate vcsim"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der, nil
}

// guestFollower makes guest info follow the VM's life as VMware Tools reports it on vCenter: when the VM
// powers off (also inside a reset) or a revert to a snapshot starts, Tools stop, the heartbeat goes gray
// and the IP address disappears. The simulator otherwise keeps whatever SET.guest.* last said, so a
// client waiting for readiness right after a revert or reset would see the stale, pre-revert guest.
// Whoever plays the guest (a test, patchgate's twin) reports it running again.
type guestFollower struct{}

func (*guestFollower) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "PatchgateGuestFollower", Value: "guest-follower"}
}

func (*guestFollower) PutObject(mo.Reference)                    {}
func (*guestFollower) RemoveObject(types.ManagedObjectReference) {}

func (g *guestFollower) UpdateObject(obj mo.Reference, changes []types.PropertyChange) {
	switch o := obj.(type) {
	case *mo.VirtualMachine:
		for _, c := range changes {
			if c.Name == "runtime.powerState" && c.Val == types.VirtualMachinePowerStatePoweredOff {
				guestDown(o.Self)
			}
		}
	case *mo.Task:
		if o.Info.DescriptionId != "VirtualMachineSnapshot.revertToSnapshot" || o.Info.Entity == nil {
			return
		}
		for _, c := range changes {
			if c.Name == "info.state" && c.Val == types.TaskInfoStateRunning {
				if snap, ok := simulator.Map.Get(*o.Info.Entity).(*simulator.VirtualMachineSnapshot); ok {
					guestDown(snap.Vm)
				}
			}
		}
	}
}

func guestDown(ref types.ManagedObjectReference) {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	for i := range vm.Guest.Net {
		vm.Guest.Net[i].IpAddress = nil
	}
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "guest.toolsRunningStatus", Val: string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning)},
		{Name: "guest.guestState", Val: "notRunning"},
		{Name: "guest.ipAddress", Val: ""},
		{Name: "guest.net", Val: vm.Guest.Net},
		{Name: "guestHeartbeatStatus", Val: types.ManagedEntityStatusGray},
		{Name: "summary.quickStats.guestHeartbeatStatus", Val: types.ManagedEntityStatusGray},
		{Name: "summary.guest.ipAddress", Val: ""},
	})
}

// heldTask is a simulator task that stays running until released or cancelled.
type heldTask struct {
	simulator.Task // by value and first: the simulator's PropertyCollector digs the mo type out of field 0
	once           sync.Once
	done           chan types.BaseMethodFault
	finished       chan struct{}
}

func (t *heldTask) finish(fault types.BaseMethodFault) {
	t.once.Do(func() { t.done <- fault })
}

// CancelTask answers the vSphere CancelTask method for held tasks.
func (t *heldTask) CancelTask(req *types.CancelTask) soap.HasFault {
	body := &methods.CancelTaskBody{}
	if !t.Info.Cancelable {
		body.Fault_ = simulator.Fault("task is not cancelable", &types.NotSupported{})
		return body
	}
	simulator.Map.Update(&t.Task, []types.PropertyChange{{Name: "info.cancelled", Val: true}})
	t.finish(&types.RequestCanceled{})
	body.Res = &types.CancelTaskResponse{}
	return body
}

type control struct {
	user, password string
	mu             sync.Mutex
	held           map[string]*heldTask
}

func (c *control) releaseAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.held {
		t.finish(nil)
	}
}

func (c *control) serve(w http.ResponseWriter, r *http.Request) {
	u, p, ok := r.BasicAuth()
	if !ok || u != c.user || p != c.password {
		w.Header().Set("WWW-Authenticate", `Basic realm="vcsim"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	var result map[string]interface{}
	var err error
	switch strings.TrimPrefix(r.URL.Path, "/_patchgate/") {
	case "hold":
		result, err = c.hold(q)
	case "progress":
		result, err = c.progress(q)
	case "release":
		result, err = c.release(q)
	case "question":
		result, err = c.question(q)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(result)
}

func findVM(name string) (*simulator.VirtualMachine, error) {
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm, ok := e.(*simulator.VirtualMachine)
		if ok && (vm.Name == name || vm.Self.Value == name) {
			return vm, nil
		}
	}
	return nil, fmt.Errorf("no VM named %q", name)
}

func (c *control) hold(q url.Values) (map[string]interface{}, error) {
	vm, err := findVM(q.Get("vm"))
	if err != nil {
		return nil, err
	}
	t := &heldTask{done: make(chan types.BaseMethodFault, 1), finished: make(chan struct{})}
	started := make(chan struct{})
	created := simulator.CreateTask(vm, "patchgateHold", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		close(started) // Task.Run has marked the task running
		return nil, <-t.done
	})
	t.Task = *created
	t.Info.Cancelable = q.Get("cancelable") == "1"
	if p, perr := strconv.Atoi(q.Get("progress")); perr == nil {
		t.Info.Progress = int32(p)
	}
	simulator.Map.Put(t) // same moref: the wrapper answers CancelTask
	simulator.Map.WithLock(vm, func() {
		simulator.Map.Update(vm, []types.PropertyChange{
			{Name: "recentTask", Val: append(append([]types.ManagedObjectReference{}, vm.RecentTask...), t.Self)},
		})
	})
	go func() {
		t.Run() // blocks in Execute until release or cancel
		close(t.finished)
	}()
	<-started
	c.mu.Lock()
	c.held[t.Self.Value] = t
	c.mu.Unlock()
	return map[string]interface{}{"task": t.Self.Value}, nil
}

func (c *control) lookup(q url.Values) (*heldTask, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.held[q.Get("task")]
	if !ok {
		return nil, fmt.Errorf("no held task %q", q.Get("task"))
	}
	return t, nil
}

func (c *control) progress(q url.Values) (map[string]interface{}, error) {
	t, err := c.lookup(q)
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(q.Get("progress"))
	if err != nil {
		return nil, fmt.Errorf("progress: %v", err)
	}
	simulator.Map.Update(&t.Task, []types.PropertyChange{{Name: "info.progress", Val: int32(p)}})
	return map[string]interface{}{"task": t.Self.Value, "progress": p}, nil
}

func (c *control) release(q url.Values) (map[string]interface{}, error) {
	t, err := c.lookup(q)
	if err != nil {
		return nil, err
	}
	var fault types.BaseMethodFault
	if q.Get("fault") == "1" {
		fault = &types.SystemError{Reason: "released with a fault by the test"}
	}
	t.finish(fault)
	<-t.finished
	c.mu.Lock()
	delete(c.held, t.Self.Value)
	c.mu.Unlock()
	return map[string]interface{}{"task": t.Self.Value, "state": string(t.Info.State)}, nil
}

func (c *control) question(q url.Values) (map[string]interface{}, error) {
	vm, err := findVM(q.Get("vm"))
	if err != nil {
		return nil, err
	}
	var info *types.VirtualMachineQuestionInfo
	if q.Get("clear") != "1" {
		text := q.Get("text")
		if text == "" {
			text = "msg.uuid.altered: This virtual machine might have been moved or copied."
		}
		info = &types.VirtualMachineQuestionInfo{
			Id:   "patchgate-question-" + vm.Self.Value,
			Text: text,
			Choice: types.ChoiceOption{
				OptionType:   types.OptionType{ValueIsReadonly: types.NewBool(false)},
				ChoiceInfo:   []types.BaseElementDescription{&types.ElementDescription{Description: types.Description{Label: "Cancel", Summary: "Cancel"}, Key: "0"}},
				DefaultIndex: 0,
			},
		}
	}
	simulator.Map.WithLock(vm, func() {
		if info == nil {
			// A nil value would make the simulator's Update panic; clear the field and report the change.
			vm.Runtime.Question = nil
			simulator.Map.Update(vm, []types.PropertyChange{{Name: "runtime.question", Op: types.PropertyChangeOpRemove}})
			return
		}
		simulator.Map.Update(vm, []types.PropertyChange{{Name: "runtime.question", Val: info}})
	})
	return map[string]interface{}{"vm": vm.Name, "question": info != nil}, nil
}
