package auth

// SessionTokenContext is what a session's sealed GitLab token is bound
// to, for tests that seal one as a sign-in does.
var SessionTokenContext = sessionTokenContext
