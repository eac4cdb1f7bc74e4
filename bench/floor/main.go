// Command floor is the API server's floor for gpupool's operator benchmark: a minimal client-go
// controller that makes exactly the writes a new ModelDeployment needs and decides nothing.
//
// It watches ModelDeployments in the namespaces it is given and, for each one it has not handled
// yet, server-side applies the objects gpupool rendered for it (its Deployment and Service), applies
// its status and posts one event. The objects, the status and the event come from a JSON file the
// benchmark writes with gpupool's own renderer, so the floor sends the same bodies the operator
// would; it only fills in what exists once the model is stored: the model's uid in the owner
// references and its generation in the status.
//
// The shape is that of a client-go controller: a shared informer (one list, then one watch per
// namespace; no other reads), a rate-limited work queue and a pool of workers. Client-side rate
// limiting is off by default (-qps 0), as it is in the operator's Python client, so the API
// server sets the pace.
//
// It prints "ready" once its caches have synced and, on SIGTERM or SIGINT, one JSON line with the
// models it handled and the requests it made by verb.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

var modelDeployments = schema.GroupVersionResource{Group: "gpupool.io", Version: "v1alpha1", Resource: "modeldeployments"}

var events = schema.GroupVersionResource{Version: "v1", Resource: "events"}

// The kinds gpupool renders for a model, and where each is written.
var resources = map[string]schema.GroupVersionResource{
	"apps/v1/Deployment":                     {Group: "apps", Version: "v1", Resource: "deployments"},
	"v1/Service":                             {Version: "v1", Resource: "services"},
	"v1/ConfigMap":                           {Version: "v1", Resource: "configmaps"},
	"policy/v1/PodDisruptionBudget":          {Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	"networking.k8s.io/v1/NetworkPolicy":     {Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
	"gateway.networking.k8s.io/v1/HTTPRoute": {Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"},
}

// Rendered is what gpupool writes for one new model.
type Rendered struct {
	Objects []map[string]any `json:"objects"`
	Status  map[string]any   `json:"status"`
	Event   Event            `json:"event"`
}

// Event is the one event posted for a new model.
type Event struct {
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// requestCounter counts every request the client sends, by verb (a watch counts as WATCH).
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *requestCounter) count(req *http.Request) {
	verb := req.Method
	if req.URL.Query().Get("watch") == "true" {
		verb = "WATCH"
	}
	c.mu.Lock()
	c.counts[verb]++
	c.mu.Unlock()
}

type countingTransport struct {
	next    http.RoundTripper
	counter *requestCounter
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.counter.count(req)
	return t.next.RoundTrip(req)
}

func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

type controller struct {
	client       dynamic.Interface
	stores       map[string]cache.Store
	queue        workqueue.TypedRateLimitingInterface[string]
	rendered     map[string]Rendered
	fieldManager string
	done         sync.Map // keys already handled: a relist's Add events are not new models
	handled      atomic.Int64
	failures     atomic.Int64
}

func (c *controller) run(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

func (c *controller) next(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	if err := c.handle(ctx, key); err != nil {
		if ctx.Err() != nil {
			return false
		}
		c.failures.Add(1)
		fmt.Fprintf(os.Stderr, "floor: %s: %v (retrying)\n", key, err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

func (c *controller) handle(ctx context.Context, key string) error {
	if _, seen := c.done.Load(key); seen {
		return nil
	}
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	item, exists, err := c.stores[namespace].GetByKey(key)
	if err != nil || !exists {
		return err
	}
	model := item.(*unstructured.Unstructured)
	want, ok := c.rendered[key]
	if !ok {
		// Not one of the benchmark's models: nothing was rendered for it, so there is nothing to write.
		fmt.Fprintf(os.Stderr, "floor: %s: no rendered objects, skipped\n", key)
		c.done.Store(key, true)
		return nil
	}
	force := true
	options := metav1.PatchOptions{FieldManager: c.fieldManager, Force: &force}
	for _, obj := range want.Objects {
		body := withOwnerUID(obj, model)
		gvr, known := resources[body.GetAPIVersion()+"/"+body.GetKind()]
		if !known {
			return fmt.Errorf("no resource known for %s %s", body.GetAPIVersion(), body.GetKind())
		}
		data, err := json.Marshal(body.Object)
		if err != nil {
			return err
		}
		if _, err := c.client.Resource(gvr).Namespace(namespace).Patch(
			ctx, body.GetName(), types.ApplyPatchType, data, options); err != nil {
			return fmt.Errorf("apply %s %s: %w", body.GetKind(), body.GetName(), err)
		}
	}
	status, err := json.Marshal(map[string]any{
		"apiVersion": model.GetAPIVersion(),
		"kind":       model.GetKind(),
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"status":     withGeneration(want.Status, model.GetGeneration()),
	})
	if err != nil {
		return err
	}
	if _, err := c.client.Resource(modelDeployments).Namespace(namespace).Patch(
		ctx, name, types.ApplyPatchType, status, options, "status"); err != nil {
		return fmt.Errorf("apply status: %w", err)
	}
	c.done.Store(key, true)
	c.handled.Add(1)
	// As in the operator, an event is a courtesy: a failure is reported, never retried.
	if _, err := c.client.Resource(events).Namespace(namespace).Create(
		ctx, event(model, want.Event, c.fieldManager), metav1.CreateOptions{}); err != nil {
		fmt.Fprintf(os.Stderr, "floor: %s: event: %v\n", key, err)
	}
	return nil
}

// withOwnerUID is the rendered object with the stored model's uid in its owner references.
func withOwnerUID(obj map[string]any, model *unstructured.Unstructured) *unstructured.Unstructured {
	body := &unstructured.Unstructured{Object: obj}
	body = body.DeepCopy()
	owners := body.GetOwnerReferences()
	for i := range owners {
		if owners[i].Kind == model.GetKind() && owners[i].Name == model.GetName() {
			owners[i].UID = model.GetUID()
		}
	}
	if len(owners) > 0 {
		body.SetOwnerReferences(owners)
	}
	return body
}

// withGeneration is the rendered status observing the stored model's generation.
func withGeneration(status map[string]any, generation int64) map[string]any {
	out := (&unstructured.Unstructured{Object: status}).DeepCopy().Object
	out["observedGeneration"] = generation
	if conditions, ok := out["conditions"].([]any); ok {
		for _, c := range conditions {
			if condition, ok := c.(map[string]any); ok {
				condition["observedGeneration"] = generation
			}
		}
	}
	return out
}

func event(model *unstructured.Unstructured, e Event, component string) *unstructured.Unstructured {
	now := time.Now().UTC().Format(time.RFC3339)
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Event",
		"metadata":   map[string]any{"generateName": model.GetName() + ".", "namespace": model.GetNamespace()},
		"involvedObject": map[string]any{
			"apiVersion":      model.GetAPIVersion(),
			"kind":            model.GetKind(),
			"name":            model.GetName(),
			"namespace":       model.GetNamespace(),
			"uid":             string(model.GetUID()),
			"resourceVersion": model.GetResourceVersion(),
		},
		"type":               e.Type,
		"reason":             e.Reason,
		"message":            e.Message,
		"source":             map[string]any{"component": component},
		"reportingComponent": component,
		"reportingInstance":  component,
		"firstTimestamp":     now,
		"lastTimestamp":      now,
		"count":              int64(1),
	}}
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	renderedPath := flag.String("rendered", "", "JSON file: {\"namespace/name\": {objects, status, event}}")
	namespaces := flag.String("namespaces", "", "comma-separated namespaces whose ModelDeployments to handle")
	workers := flag.Int("workers", 8, "concurrent workers")
	qps := flag.Float64("qps", 0, "client-side rate limit in requests per second (0: none)")
	burst := flag.Int("burst", 0, "client-side burst, with -qps")
	fieldManager := flag.String("field-manager", "gpupool", "field manager of the applies")
	userAgent := flag.String("user-agent", "gpupool-floor", "user agent, as the audit log records it")
	flag.Parse()
	if *renderedPath == "" || *namespaces == "" {
		fmt.Fprintln(os.Stderr, "floor: -rendered and -namespaces are required")
		os.Exit(2)
	}

	raw, err := os.ReadFile(*renderedPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "floor: %v\n", err)
		os.Exit(1)
	}
	rendered := map[string]Rendered{}
	if err := json.Unmarshal(raw, &rendered); err != nil {
		fmt.Fprintf(os.Stderr, "floor: %s: %v\n", *renderedPath, err)
		os.Exit(1)
	}

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "floor: %v\n", err)
		os.Exit(1)
	}
	config.UserAgent = *userAgent
	if *qps > 0 {
		config.QPS, config.Burst = float32(*qps), *burst
	} else {
		// client-go's default is 5 QPS, burst 10; a negative QPS turns its limiter off.
		config.QPS = -1
	}
	counter := &requestCounter{counts: map[string]int{}}
	config.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return countingTransport{next: next, counter: counter}
	})
	client, err := dynamic.NewForConfig(rest.CopyConfig(config))
	if err != nil {
		fmt.Fprintf(os.Stderr, "floor: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	c := &controller{
		client:       client,
		stores:       map[string]cache.Store{},
		queue:        workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		rendered:     rendered,
		fieldManager: *fieldManager,
	}
	var synced []cache.InformerSynced
	for _, namespace := range strings.Split(*namespaces, ",") {
		factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 0, namespace, nil)
		informer := factory.ForResource(modelDeployments).Informer()
		if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
					c.queue.Add(key)
				}
			},
		}); err != nil {
			fmt.Fprintf(os.Stderr, "floor: %v\n", err)
			os.Exit(1)
		}
		c.stores[namespace] = informer.GetStore()
		synced = append(synced, informer.HasSynced)
		factory.Start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		fmt.Fprintln(os.Stderr, "floor: caches did not sync")
		os.Exit(1)
	}
	fmt.Println("ready")
	c.run(ctx, *workers)

	summary, _ := json.Marshal(map[string]any{
		"handled":  c.handled.Load(),
		"retries":  c.failures.Load(),
		"requests": counter.snapshot(),
	})
	fmt.Println(string(summary))
}
