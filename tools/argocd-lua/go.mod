// Argo CD's Lua runtime for resource health scripts: gopher-lua at the version Argo CD pins
// (argoproj/argo-cd go.mod: github.com/yuin/gopher-lua v1.1.2). build.sh builds it.
module gpupool.local/argocd-lua

go 1.23

require github.com/yuin/gopher-lua v1.1.2
